"""instruction_node and speech_node as real processes over DDS, fed text and espeak-ng audio."""
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import CONFIG_DIR, VENV_BIN, NodeProcess, spin_until
from std_msgs.msg import Bool, String
from vla_ros.msg import AudioData, Instruction, InstructionFeedback

from vla_ros import qos
from vla_ros.intake import synth
from vla_ros.intake.audio import resample
from vla_ros.intake.speech import DEFAULT_MIN_CONFIDENCE
from vla_ros.nodes import instruction_node, speech_node

pytestmark = pytest.mark.skipif(not synth.espeak_available(), reason="espeak-ng is not installed")

STARTUP_TIMEOUT = 20.0
ANSWER_TIMEOUT = 30.0  # recognition takes ~1 s idle, several times that on a loaded machine
STREAM_GAP = 0.5  # config/speech_node.yaml


class Client:
    """The user's side: publishes text and audio, collects feedback, instructions and e-stops."""

    def __init__(self, node, processes=()):
        self.node = node
        self.processes = processes  # their logs explain an answer that never came
        self.feedback: list[InstructionFeedback] = []
        self.instructions: list[Instruction] = []
        self.estops: list[Bool] = []
        node.create_subscription(InstructionFeedback, "/vla/instruction_feedback", self.feedback.append, qos.RELIABLE)
        node.create_subscription(Instruction, "/vla/instruction", self.instructions.append, qos.LATCHED)
        node.create_subscription(Bool, "/safety/estop", self.estops.append, qos.LATCHED)
        self.text_pub = node.create_publisher(String, "/voice_command", qos.RELIABLE)
        self.audio_pub = node.create_publisher(AudioData, "/speech/audio", qos.AUDIO)

    def wait_ready(self):
        assert spin_until(self.node, lambda: self.text_pub.get_subscription_count() > 0
                          and self.audio_pub.get_subscription_count() > 0
                          and self.node.count_publishers("/vla/instruction_feedback") > 0
                          and self.node.count_publishers(speech_node.TRANSCRIPT_TOPIC) > 0
                          and self.node.count_subscribers(speech_node.TRANSCRIPT_TOPIC) > 0, STARTUP_TIMEOUT)
        # speech_node -> instruction_node -> us must have matched too: a transcript published
        # before that is lost, and on a loaded machine discovery takes seconds. Short silent
        # streams (each answered "no speech detected") until one answer comes back.
        answered = lambda: any(f.source == Instruction.SOURCE_SPEECH for f in self.feedback)  # noqa: E731
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            self.audio_pub.publish(AudioData(encoding="S16LE", sample_rate=16000, channels=1,
                                             data=bytes(3200)))
            if spin_until(self.node, answered, 2.0):
                spin_until(self.node, lambda: False, STREAM_GAP + 0.3)  # the next clip is a new stream
                return
        raise AssertionError("speech_node's answers never reached us")

    def say(self, text: str) -> InstructionFeedback:
        start = len(self.feedback)
        self.text_pub.publish(String(data=text))
        return self._answer(start, lambda f: f.source == Instruction.SOURCE_TEXT and f.raw_text == text)

    def speak(self, data: bytes, rate: int, channels: int = 1, encoding: str = "S16LE") -> InstructionFeedback:
        """Publish a clip in 100 ms blocks, then wait for speech_node's answer and for the stream to end."""
        start = len(self.feedback)
        step = int(max(rate, 16000) * 0.1) * 2 * channels  # 100 ms (even when the rate field is garbage)
        for offset in range(0, len(data), step):
            self.audio_pub.publish(AudioData(encoding=encoding, sample_rate=rate, channels=channels,
                                             data=data[offset:offset + step]))
            spin_until(self.node, lambda: False, 0.005)
        answer = self._answer(start, lambda f: f.source == Instruction.SOURCE_SPEECH)
        spin_until(self.node, lambda: False, STREAM_GAP + 0.3)  # the next clip is a new stream
        return answer

    def _answer(self, start, match) -> InstructionFeedback:
        answered = spin_until(self.node, lambda: any(match(f) for f in self.feedback[start:]), ANSWER_TIMEOUT)
        assert answered, "no answer; " + "\n".join(f"--- {p.log_path.name}\n{p.output()[-3000:]}" for p in self.processes)
        return next(f for f in self.feedback[start:] if match(f))


def _clip(text, voice="en-us", speed=160):
    samples, rate = synth.speak(text, voice, speed)
    pad = np.zeros(int(0.3 * rate), dtype=np.int16)
    return np.concatenate([pad, samples, pad]), rate


def _start(tmp_path, executable, *args):
    return NodeProcess([str(VENV_BIN / executable), "--ros-args", *args], tmp_path / f"{executable}-{time.monotonic_ns()}.log")


@pytest.fixture(scope="module")
def intake(ros_context, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("intake")
    processes = [
        # No flooding limit here: the tests below send inputs back to back.
        _start(tmp, "instruction_node", "--params-file", str(CONFIG_DIR / "instruction_node.yaml"),
               "-p", "rate_limit:=100.0", "-p", "rate_burst:=100"),
        _start(tmp, "speech_node", "--params-file", str(CONFIG_DIR / "speech_node.yaml")),
    ]
    import rclpy

    node = rclpy.create_node("intake_test_client")
    client = Client(node, processes)
    client.wait_ready()
    yield client
    node.destroy_node()
    for process in processes:
        code = process.stop()
        output = process.log_path.read_text()
        assert code == 0 and "Traceback" not in output, output


def test_text_becomes_a_latched_instruction(intake, ros_node):
    answer = intake.say("  Pick up the RED cube! ")
    assert answer.accepted and not answer.is_stop and answer.reason == ""
    assert answer.text == "pick up the red cube" and answer.id and answer.confidence == 1.0
    # A policy node that starts later still gets it (transient local).
    late = []
    ros_node.create_subscription(Instruction, "/vla/instruction", late.append, qos.LATCHED)
    assert spin_until(ros_node, lambda: late, ANSWER_TIMEOUT)
    assert late[-1].id == answer.id and late[-1].text == "pick up the red cube"
    assert late[-1].source == Instruction.SOURCE_TEXT and late[-1].header.stamp.sec > 0


@pytest.mark.parametrize(
    "text, reason",
    [("", "empty instruction"), ("?!", "empty instruction"), ("go home " * 40, "too long (320 > 256"),
     ("go\x1b home", "non-printable"), ("resume", "/safety/reset_estop")],
)
def test_bad_text_is_rejected_with_a_reason(intake, text, reason):
    before = len(intake.instructions)
    answer = intake.say(text)
    assert not answer.accepted and reason in answer.reason and answer.id == ""
    spin_until(intake.node, lambda: False, 0.2)
    assert len(intake.instructions) == before


def test_stop_goes_to_the_estop_not_the_policy(intake, ros_node):
    before = len(intake.instructions)
    answer = intake.say("Please STOP now")
    assert answer.accepted and answer.is_stop
    assert spin_until(intake.node, lambda: any(m.data for m in intake.estops), ANSWER_TIMEOUT)
    late = []
    ros_node.create_subscription(Bool, "/safety/estop", late.append, qos.LATCHED)
    assert spin_until(ros_node, lambda: late, ANSWER_TIMEOUT) and late[-1].data is True
    assert len(intake.instructions) == before


def test_spoken_command_becomes_an_instruction(intake):
    samples, rate = _clip("place the yellow cube on the black plate")
    answer = intake.speak(samples.tobytes(), rate)
    assert answer.accepted, answer.reason
    assert answer.text == "place the yellow cube on the black plate"
    assert answer.confidence >= DEFAULT_MIN_CONFIDENCE["pocketsphinx"]
    assert spin_until(intake.node, lambda: intake.instructions and intake.instructions[-1].id == answer.id,
                      ANSWER_TIMEOUT)
    assert intake.instructions[-1].source == Instruction.SOURCE_SPEECH


def test_stereo_at_44k_is_mixed_down_and_resampled(intake):
    samples, rate = _clip("slide the green cylinder right", voice="en-gb")
    mono = np.round(resample(samples.astype(np.float32), rate, 44100)).astype(np.int16)
    stereo = np.stack([mono, (mono * 0.8).astype(np.int16)], axis=1).reshape(-1)
    answer = intake.speak(stereo.tobytes(), 44100, channels=2)
    assert answer.accepted and answer.text == "slide the green cylinder right", answer.reason


def test_spoken_stop_triggers_the_estop(intake):
    intake.estops.clear()
    samples, rate = _clip("emergency stop")
    answer = intake.speak(samples.tobytes(), rate)
    assert answer.is_stop and answer.accepted
    assert spin_until(intake.node, lambda: any(m.data for m in intake.estops), ANSWER_TIMEOUT)


def _garbage():
    rng = np.random.default_rng(1)
    speech, rate = _clip("pick up the red cube")
    oov, _ = _clip("please tell me a joke")
    return [
        ("silence", np.zeros(2 * rate, np.int16).tobytes(), rate, "S16LE", "no speech detected"),
        ("steady noise", rng.normal(0, 2000, 2 * rate).astype(np.int16).tobytes(), rate, "S16LE",
         "no speech detected"),
        ("clipped", np.clip(speech.astype(np.int32) * 20, -32768, 32767).astype(np.int16).tobytes(), rate, "S16LE",
         "clipped"),
        ("wrong rate field", speech.tobytes(), 0, "S16LE", "unsupported sample rate 0"),
        ("wrong encoding field", speech.tobytes(), rate, "F32LE", "unsupported audio encoding"),
        ("rate mismatch (22 kHz sent as 8 kHz)", speech.tobytes(), 8000, "S16LE", "please repeat"),
        ("not a command", oov.tobytes(), rate, "S16LE", "please repeat"),
    ]


@pytest.mark.parametrize("name, data, rate, encoding, reason", _garbage(), ids=[g[0] for g in _garbage()])
def test_garbage_audio_is_rejected_not_acted_on(intake, name, data, rate, encoding, reason):
    before = len(intake.instructions)
    estops = len(intake.estops)
    answer = intake.speak(data, rate, encoding=encoding)
    assert not answer.accepted and not answer.is_stop, answer
    assert reason in answer.reason, answer.reason
    assert len(intake.instructions) == before and len(intake.estops) == estops


def test_flooding_is_rejected(ros_context, ros_node, tmp_path):
    process = _start(tmp_path, "instruction_node", "--params-file", str(CONFIG_DIR / "instruction_node.yaml"),
                     "-r", "/vla/instruction_feedback:=/flood/feedback", "-r", "/voice_command:=/flood/text",
                     "-r", "/vla/instruction:=/flood/instruction")
    try:
        feedback = []
        sub = ros_node.create_subscription(InstructionFeedback, "/flood/feedback", feedback.append, qos.RELIABLE)
        pub = ros_node.create_publisher(String, "/flood/text", qos.RELIABLE)
        # Matched both ways, not only seen in the graph: feedback sent before the match is lost.
        assert spin_until(ros_node, lambda: pub.get_subscription_count() > 0
                          and sub.get_publisher_count() > 0, STARTUP_TIMEOUT)
        spin_until(ros_node, lambda: False, 0.5)
        for i in range(6):
            pub.publish(String(data=f"push the red cube left {i}"))
        assert spin_until(ros_node, lambda: len(feedback) == 6, ANSWER_TIMEOUT)
        assert [f.accepted for f in feedback] == [True, True, True, False, False, False]
        assert "too many instructions" in feedback[-1].reason
    finally:
        assert process.stop() == 0


@pytest.mark.parametrize(
    "executable, args, message",
    [
        ("speech_node", ["-p", "backend:=kaldi"], r"backend: must be one of pocketsphinx, whisper"),
        ("speech_node", ["-p", "min_confidence.pocketsphinx:=1.5"], r"min_confidence.pocketsphinx: must be within"),
        ("speech_node", ["-p", "vad.stop_db:=30.0"], r"stop_db .* must not exceed start_db"),
        ("speech_node", ["-p", "backend:=whisper", "-p", "whisper_model_dir:=/nonexistent"], r"whisper|Whisper"),
        ("instruction_node", ["-p", "max_length:=0"], r"max_length: must be > 0"),
        ("instruction_node", ["-p", "rate_limt:=5.0"], r"rate_limt: unknown parameter"),
    ],
)
def test_bad_configuration_exits_2(tmp_path, executable, args, message):
    process = _start(tmp_path, executable, *args)
    assert process.proc.wait(STARTUP_TIMEOUT) == 2
    process.stop()
    output = process.log_path.read_text()
    assert "error:" in output and re.search(message, output), output
    assert "Traceback" not in output


def _flatten(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


@pytest.mark.parametrize("module, name", [(instruction_node, "instruction_node"), (speech_node, "speech_node")])
def test_config_file_lists_every_parameter_with_its_default(module, name):
    config = yaml.safe_load(Path(CONFIG_DIR / f"{name}.yaml").read_text())[name]["ros__parameters"]
    assert _flatten(config) == {p.name: p.default for p in module.PARAMS}


def _say(*args, timeout=30):
    return subprocess.run([str(VENV_BIN / "vla-ros"), "say", *args], capture_output=True, text=True, timeout=timeout)


def test_say_cli(intake, tmp_path):
    result = _say("Go home.")
    assert result.returncode == 0 and 'accepted: "go home"' in result.stdout, result
    result = _say("continue")
    assert result.returncode == 1 and "rejected:" in result.stdout and "reset_estop" in result.stdout, result
    samples, rate = _clip("open the gripper")
    synth.write_wav(tmp_path / "open.wav", samples, rate)
    result = _say("--wav", str(tmp_path / "open.wav"))
    assert result.returncode == 0 and 'accepted: "open the gripper"' in result.stdout, result
    spin_until(intake.node, lambda: False, STREAM_GAP + 0.3)
    synth.write_wav(tmp_path / "silence.wav", np.zeros(rate, np.int16), rate)
    result = _say("--wav", str(tmp_path / "silence.wav"))
    assert result.returncode == 1 and "no speech detected" in result.stdout, result


def test_say_usage_errors(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"not a wav file")
    for args, message in [(["--wav", str(tmp_path / "missing.wav")], "cannot read WAV"),
                          (["--wav", str(tmp_path / "bad.wav")], "cannot read WAV"),
                          ([], "exactly one of"), (["go home", "--mic"], "exactly one of")]:
        result = _say(*args)
        assert result.returncode == 2 and message in result.stderr, (args, result)
