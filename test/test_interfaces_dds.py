"""vla_ros's own messages cross real DDS between two real processes of this package."""
import json
import subprocess

import pytest
from conftest import VENV_BIN

# One representative message per type, with fields that must survive the trip.
SAMPLES = {
    "vla_ros/msg/Instruction": {"id": "i-1", "text": "pick up the red cube", "source": 1, "confidence": 0.75},
    "vla_ros/msg/InstructionFeedback": {"raw_text": "Pick up the RED cube!", "accepted": False, "reason": "too fast"},
    "vla_ros/msg/ActionChunk": {
        "instruction_id": "i-1",
        "confidence": 0.5,
        "inference_time": 0.004,
        "trajectory": {"joint_names": ["panda_joint1"], "points": [{"positions": [0.25]}, {"positions": [0.5]}]},
    },
    "vla_ros/msg/SafetyStatus": {"state": 3, "reason": "e-stop", "active_limits": ["velocity:panda_joint2"]},
    "vla_ros/msg/AudioData": {"encoding": "S16LE", "sample_rate": 16000, "channels": 1, "data": [1, 2, 255]},
    "vla_ros/msg/TaskStatus": {"task_json": '{"task": "home"}', "seed": 7, "success": True, "elapsed": 1.5},
    "vla_ros/msg/PolicyStatus": {"state": 1, "instruction": "go home", "chunks_computed": 12},
}


def _contains(received, expected):
    if isinstance(expected, dict):
        return all(_contains(received[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return len(received) == len(expected) and all(_contains(r, e) for r, e in zip(received, expected))
    if isinstance(expected, float):
        return received == pytest.approx(expected, rel=1e-6)
    return received == expected


@pytest.mark.parametrize("msg_type", sorted(SAMPLES))
def test_custom_message_crosses_processes(msg_type):
    topic = "/test/" + msg_type.split("/")[-1].lower()
    echo = subprocess.Popen(
        [str(VENV_BIN / "vla-ros"), "topic", "echo", topic, msg_type, "--count", "1", "--timeout", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        subprocess.run(
            [str(VENV_BIN / "vla-ros"), "topic", "pub", topic, msg_type, json.dumps(SAMPLES[msg_type]),
             "--wait-subscribers", "15"],
            check=True,
            timeout=30,
        )
        out, err = echo.communicate(timeout=30)
    finally:
        echo.kill()
    assert echo.returncode == 0, err
    received = json.loads(out.splitlines()[0])
    assert _contains(received, SAMPLES[msg_type]), received


def test_bad_type_and_fields_are_clear_errors():
    bad_type = subprocess.run([str(VENV_BIN / "vla-ros"), "topic", "pub", "/x", "vla_ros/msg/Nope", "{}"],
                              capture_output=True, text=True, timeout=30)
    assert bad_type.returncode == 2 and "unknown message type" in bad_type.stderr
    bad_field = subprocess.run([str(VENV_BIN / "vla-ros"), "topic", "pub", "/x", "vla_ros/msg/Instruction",
                                '{"txt": "hi"}'], capture_output=True, text=True, timeout=30)
    assert bad_field.returncode == 2 and "no field 'txt'" in bad_field.stderr


def test_unknown_subcommand_prints_usage_and_exits_2():
    result = subprocess.run([str(VENV_BIN / "vla-ros"), "fly"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "usage: vla-ros" in result.stderr
