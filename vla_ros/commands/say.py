"""`vla-ros say`: give the robot an instruction by text, a WAV file or the microphone.

Prints what instruction intake understood (its feedback message) and exits 0
when the instruction (or a stop) was accepted, 1 when it was rejected or no
feedback came within --timeout, 2 for a usage error (unreadable file, no
microphone).
"""
from __future__ import annotations

import argparse
import sys
import time
import wave

VOICE_COMMAND_TOPIC = "/voice_command"
AUDIO_TOPIC = "/speech/audio"
FEEDBACK_TOPIC = "/vla/instruction_feedback"
BLOCK_SECONDS = 0.1
MIC_RATE = 16000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="?", help='the instruction, e.g. "pick up the red cube" (on /voice_command)')
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--wav", metavar="FILE", help="speak a 16-bit PCM WAV file instead (on /speech/audio)")
    source.add_argument("--mic", action="store_true", help="speak into the default microphone instead")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="seconds to wait for intake's answer (default 10)")


def _read_wav(path: str) -> tuple[bytes, int, int]:
    try:
        with wave.open(path, "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getcomptype() != "NONE":
                raise ValueError(f"{path}: only 16-bit PCM WAV files are supported "
                                 f"(this one has {8 * wav.getsampwidth()}-bit {wav.getcomptype()})")
            return wav.readframes(wav.getnframes()), wav.getframerate(), wav.getnchannels()
    except (OSError, EOFError, wave.Error) as err:
        raise ValueError(f"cannot read WAV file {path}: {err}") from err


def _describe(feedback) -> str:
    understood = f'"{feedback.text or feedback.raw_text}"'
    if feedback.is_stop:
        return f"stop: emergency stop triggered by {understood}; reset it with the /safety/reset_estop service"
    if feedback.accepted:
        return f"accepted: {understood} (instruction {feedback.id}, confidence {feedback.confidence:.2f})"
    heard = f" (understood: {understood})" if feedback.text or feedback.raw_text else ""
    return f"rejected: {feedback.reason}{heard}"


def run(args: argparse.Namespace) -> int:
    if sum((args.text is not None, args.wav is not None, args.mic)) != 1:
        print("error: give exactly one of TEXT, --wav FILE or --mic", file=sys.stderr)
        return 2
    if args.timeout <= 0:
        print("error: --timeout must be > 0", file=sys.stderr)
        return 2
    audio = None
    if args.wav:
        try:
            audio = _read_wav(args.wav)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2

    import rclpy
    from rclpy.executors import ExternalShutdownException

    from vla_ros.node_common import configure_middleware

    configure_middleware()
    rclpy.init()
    node = rclpy.create_node("vla_ros_say")
    try:
        return _say(node, args, audio)
    except (KeyboardInterrupt, ExternalShutdownException):
        return 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _say(node, args, audio) -> int:
    import rclpy
    from std_msgs.msg import String

    from vla_ros import qos
    from vla_ros.msg import AudioData, Instruction, InstructionFeedback

    answers = []
    expected_source = Instruction.SOURCE_TEXT if args.text is not None else Instruction.SOURCE_SPEECH

    def on_feedback(msg) -> None:
        if msg.source == expected_source and (args.text is None or msg.raw_text == args.text):
            answers.append(msg)

    node.create_subscription(InstructionFeedback, FEEDBACK_TOPIC, on_feedback, qos.RELIABLE)
    deadline = time.monotonic() + args.timeout

    def spin_until(done) -> bool:
        while not done() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.02)
        return done()

    topic = VOICE_COMMAND_TOPIC if args.text is not None else AUDIO_TOPIC
    publisher = (node.create_publisher(String, topic, qos.RELIABLE) if args.text is not None
                 else node.create_publisher(AudioData, topic, qos.AUDIO))
    def intake_ready() -> bool:
        return publisher.get_subscription_count() > 0 and node.count_publishers(FEEDBACK_TOPIC) > 0

    if not spin_until(intake_ready):
        print(f"timeout: no instruction intake is listening on {topic} (is instruction_node"
              f"{'' if args.text is not None else ' / speech_node'} running?)", file=sys.stderr)
        return 1
    # Discovery is two-way: give the feedback publisher a moment to match our subscription too.
    rclpy.spin_once(node, timeout_sec=0.2)

    if args.text is not None:
        publisher.publish(String(data=args.text))
    elif audio is not None:
        _publish_audio(publisher, node, *audio)
    else:
        status = _stream_microphone(publisher, node, lambda: bool(answers), deadline)
        if status:
            return status
    if not spin_until(lambda: bool(answers)):
        print(f"timeout: no answer on {FEEDBACK_TOPIC} within {args.timeout:g} s", file=sys.stderr)
        return 1
    print(_describe(answers[0]))
    return 0 if answers[0].accepted else 1


def _audio_message(data: bytes, rate: int, channels: int, node):
    from vla_ros.msg import AudioData

    msg = AudioData(encoding=AudioData.ENCODING_S16LE, sample_rate=rate, channels=channels, data=data)
    msg.header.stamp = node.get_clock().now().to_msg()
    return msg


def _publish_audio(publisher, node, data: bytes, rate: int, channels: int) -> None:
    """A clip in 100 ms blocks, paced at 10x real time (the subscriber keeps up; its queue stays short)."""
    import rclpy

    step = int(rate * BLOCK_SECONDS) * 2 * channels
    for start in range(0, len(data), step):
        publisher.publish(_audio_message(data[start:start + step], rate, channels, node))
        rclpy.spin_once(node, timeout_sec=BLOCK_SECONDS / 10)


def _stream_microphone(publisher, node, answered, deadline) -> int:
    """Stream the default input device until intake answers or the deadline passes; 2 if there is no device."""
    import queue

    import rclpy

    try:
        import sounddevice
    except (ImportError, OSError) as err:
        print(f"error: --mic needs the 'sounddevice' package and the PortAudio library: {err}", file=sys.stderr)
        return 2
    blocks: queue.Queue[bytes] = queue.Queue()
    try:
        stream = sounddevice.RawInputStream(samplerate=MIC_RATE, channels=1, dtype="int16",
                                            blocksize=int(MIC_RATE * BLOCK_SECONDS),
                                            callback=lambda data, frames, t, status: blocks.put(bytes(data)))
    except Exception as err:  # PortAudio reports a missing device with its own exception types
        print(f"error: cannot open a microphone: {err}", file=sys.stderr)
        return 2
    print("listening... say a command", file=sys.stderr)
    with stream:
        while not answered() and time.monotonic() < deadline:
            try:
                publisher.publish(_audio_message(blocks.get(timeout=BLOCK_SECONDS), MIC_RATE, 1, node))
            except queue.Empty:
                pass
            rclpy.spin_once(node, timeout_sec=0.0)
    return 0
