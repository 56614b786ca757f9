"""The lerobot backend: its wire protocol, its load errors, and a real (random) LeRobot ACT policy.

The tests against a real policy need a Python environment with lerobot
(docs/BACKENDS.md): $VLA_ROS_LEROBOT_PYTHON, or /work/lerobot-venv. Without one
they are skipped; CI does not have it.
"""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vla_ros import arm
from vla_ros.policies import lerobot_backend as backend
from vla_ros.policies import load_backend
from vla_ros.policies.base import Observation
from vla_ros.policies.lerobot_runner import ProtocolError, read_message, write_message

ROOT = Path(__file__).resolve().parents[1]
LEROBOT_PYTHON = os.environ.get(backend.PYTHON_ENV) or "/work/lerobot-venv/bin/python"
needs_lerobot = pytest.mark.skipif(not Path(LEROBOT_PYTHON).is_file(),
                                   reason=f"no LeRobot environment: set {backend.PYTHON_ENV} (docs/BACKENDS.md)")


def test_messages_carry_headers_and_numeric_arrays():
    stream = io.BytesIO()
    arrays = {"image": np.arange(24, dtype=np.uint8).reshape(2, 4, 3), "state": np.linspace(0, 1, 8, dtype=np.float32),
              "empty": np.zeros((0, 8)), "big_endian": np.arange(3, dtype=">i8")}
    write_message(stream, {"op": "predict", "instruction": "pick up the red cube"}, arrays)
    write_message(stream, {"op": "reset"})
    stream.seek(0)
    header, received = read_message(stream)
    assert header == {"op": "predict", "instruction": "pick up the red cube"}
    assert list(received) == list(arrays)
    for name, array in arrays.items():
        assert received[name].dtype == array.dtype and received[name].shape == array.shape
        np.testing.assert_array_equal(received[name], array)
    assert read_message(stream) == ({"op": "reset"}, {})
    with pytest.raises(ProtocolError, match="ended"):
        read_message(stream)


def test_messages_refuse_objects_and_garbage():
    with pytest.raises(ValueError, match="numeric"):
        write_message(io.BytesIO(), {}, {"bad": np.array([{"a": 1}], dtype=object)})
    stream = io.BytesIO()
    write_message(stream, {"op": "x"}, {"a": np.zeros(10)})
    with pytest.raises(ProtocolError, match="middle"):
        read_message(io.BytesIO(stream.getvalue()[:-5]))
    with pytest.raises(ProtocolError, match="not a runner message"):
        read_message(io.BytesIO(b"\xff\xff\xff\x7f" + b"{}"))


def _fake_policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policy"
    directory.mkdir()
    for name in backend.SAVED_POLICY_FILES:
        (directory / name).write_text("{}")
    return directory


def test_load_errors_name_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv(backend.PYTHON_ENV, raising=False)
    with pytest.raises(ValueError, match="directory of a saved LeRobot policy"):
        load_backend("lerobot", "")
    with pytest.raises(FileNotFoundError, match="directory not found"):
        load_backend("lerobot", str(tmp_path / "nowhere"))
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        load_backend("lerobot", str(partial))
    directory = _fake_policy_dir(tmp_path)
    with pytest.raises(ImportError, match=f"`lerobot` package.*{backend.PYTHON_ENV}") as raised:
        load_backend("lerobot", str(directory))
    assert raised.value.name == "lerobot"
    monkeypatch.setenv(backend.PYTHON_ENV, str(tmp_path / "no-python"))
    with pytest.raises(FileNotFoundError, match="no such Python interpreter"):
        load_backend("lerobot", str(directory))


def test_a_server_without_lerobot_fails_to_load_with_the_reason(tmp_path, monkeypatch):
    # This venv's Python has no lerobot: the server starts, and its load request reports why it failed.
    monkeypatch.setenv(backend.PYTHON_ENV, sys.executable)
    with pytest.raises(backend.LeRobotLoadError, match="No module named 'lerobot'"):
        load_backend("lerobot", str(_fake_policy_dir(tmp_path)))


# ---------------------------------------------------------------- a real LeRobot ACT policy


@pytest.fixture(scope="module")
def act_dir(tmp_path_factory):
    if not Path(LEROBOT_PYTHON).is_file():
        pytest.skip(f"no LeRobot environment: set {backend.PYTHON_ENV} (docs/BACKENDS.md)")
    directory = tmp_path_factory.mktemp("lerobot") / "act"
    subprocess.run([LEROBOT_PYTHON, str(ROOT / "bench" / "lerobot_tools.py"), "random-policy", str(directory),
                    "--image-size", "64", "--chunk-size", "10", "--n-action-steps", "5"], check=True,
                   stdout=subprocess.DEVNULL)
    return directory


@pytest.fixture(scope="module")
def act_policy(act_dir):
    policy = backend.load(str(act_dir), python=LEROBOT_PYTHON)
    yield policy
    policy.close()


def _observation(seed: int) -> Observation:
    rng = np.random.default_rng(seed)
    state = arm.home_vector() + rng.normal(0, 0.05, 8)
    return Observation(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8), state.astype(np.float32))


# What LeRobot itself returns for the same inputs, through its own select_action queue:
# the first n_action_steps actions, un-normalised by the saved post-processor.
LEROBOT_REFERENCE = """
import json, sys, numpy as np, torch
from lerobot.configs.policies import PreTrainedConfig
from lerobot.policies.act.modeling_act import ACTPolicy
from lerobot.policies.factory import make_pre_post_processors
path = sys.argv[1]
sys.path.insert(0, sys.argv[3])
from vla_ros.policies import lerobot_backend
from vla_ros.policies.base import Observation
import vla_ros.camera.preprocess as pre
state = np.load(sys.argv[4]); image = np.load(sys.argv[5])
config = PreTrainedConfig.from_pretrained(path)
policy = ACTPolicy.from_pretrained(path, config=config)
preprocessor, postprocessor = make_pre_post_processors(config, pretrained_path=path)
frame = torch.from_numpy(pre.policy_frame(image, 64)).permute(2, 0, 1).float() / 255
batch = preprocessor({"observation.images.scene": frame, "observation.state": torch.from_numpy(state), "task": "x"})
actions = [postprocessor(policy.select_action(batch))[0].numpy().tolist() for _ in range(config.n_action_steps)]
in_process = lerobot_backend.load(path)  # lerobot is importable here: no server
assert not isinstance(in_process.runner, lerobot_backend.RemoteRunner)
chunk = in_process.select_action(Observation(image, state), "x")
print(json.dumps({"lerobot": actions, "in_process": chunk.tolist()}))
"""


@needs_lerobot
@pytest.mark.slow
def test_a_random_act_policy_returns_lerobots_own_actions(act_dir, act_policy, tmp_path):
    assert act_policy.info["type"] == "act"
    assert (act_policy.n_action_steps, act_policy.aggregation) == (5, "latest")
    observation = _observation(1)
    chunk = act_policy.select_action(observation, "pick up the red cube")
    assert chunk.shape == (10, 8) and np.all(np.isfinite(chunk))
    np.testing.assert_array_equal(act_policy.select_action(observation, "pick up the red cube"), chunk)
    assert not np.allclose(act_policy.select_action(_observation(2), "pick up the red cube"), chunk)

    np.save(tmp_path / "state.npy", observation.state)
    np.save(tmp_path / "image.npy", observation.image)
    completed = subprocess.run([LEROBOT_PYTHON, "-c", LEROBOT_REFERENCE, str(act_dir), "1", str(ROOT),
                                str(tmp_path / "state.npy"), str(tmp_path / "image.npy")],
                               stdout=subprocess.PIPE, text=True, check=True)
    reference = json.loads(completed.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(chunk[:5], reference["lerobot"], atol=1e-5)
    np.testing.assert_allclose(chunk, reference["in_process"], atol=1e-5)


@needs_lerobot
@pytest.mark.slow
def test_server_errors_are_raised_and_the_server_keeps_serving(act_policy):
    with pytest.raises(RuntimeError, match="server failed"):
        act_policy.runner.predict({}, np.zeros(8), "pick")  # no image
    act_policy.reset()
    assert act_policy.select_action(_observation(3), "open your hand").shape == (10, 8)


@needs_lerobot
@pytest.mark.slow
def test_close_stops_the_server(act_dir):
    policy = backend.load(str(act_dir), python=LEROBOT_PYTHON)
    process = policy.runner._process
    policy.close()
    assert process.poll() is not None
    with pytest.raises(RuntimeError, match="server stopped"):
        policy.select_action(_observation(4), "pick")


# Diffusion samples noise and keeps an observation history: with the same seeds, two calls through
# the backend (in-process, inside the LeRobot Python) equal LeRobot's own select_action sequence.
DIFFUSION_REFERENCE = """
import json, sys, numpy as np, torch
path = sys.argv[1]
sys.path.insert(0, sys.argv[2])
from lerobot.configs.policies import PreTrainedConfig
from lerobot.policies.factory import get_policy_class, make_pre_post_processors
from vla_ros.camera.preprocess import policy_frame
from vla_ros.policies import lerobot_backend
from vla_ros.policies.base import Observation
rng = np.random.default_rng(0)
obs = [Observation(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8), rng.normal(0, 0.1, 8).astype(np.float32))
       for _ in range(2)]
config = PreTrainedConfig.from_pretrained(path)
policy = get_policy_class(config.type).from_pretrained(path, config=config)
pre, post = make_pre_post_processors(config, pretrained_path=path)
def batch(o):
    frame = torch.from_numpy(policy_frame(o.image, 64)).permute(2, 0, 1).float() / 255
    return pre({"observation.images.scene": frame, "observation.state": torch.from_numpy(o.state), "task": "x"})
policy.reset()
torch.manual_seed(1)
first = [post(policy.select_action(batch(obs[0])))[0].tolist() for _ in range(config.n_action_steps)]
torch.manual_seed(2)
second = post(policy.select_action(batch(obs[1])))[0].tolist()  # from the history [obs 0, obs 1]
ours = lerobot_backend.load(path)
ours.reset()
torch.manual_seed(1)
chunk_1 = ours.select_action(obs[0], "x").tolist()
torch.manual_seed(2)
chunk_2 = ours.select_action(obs[1], "x").tolist()
print(json.dumps({"lerobot": [first, second], "ours": [chunk_1, chunk_2]}))
"""


@needs_lerobot
@pytest.mark.slow
def test_a_random_diffusion_policy_matches_lerobots_own_select_action(tmp_path):
    directory = tmp_path / "diffusion"
    subprocess.run([LEROBOT_PYTHON, str(ROOT / "bench" / "lerobot_tools.py"), "random-policy", str(directory),
                    "--type", "diffusion", "--image-size", "64", "--chunk-size", "8", "--n-action-steps", "4"],
                   check=True, stdout=subprocess.DEVNULL)
    completed = subprocess.run([LEROBOT_PYTHON, "-c", DIFFUSION_REFERENCE, str(directory), str(ROOT)],
                               stdout=subprocess.PIPE, text=True, check=True)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    (first, second), (chunk_1, chunk_2) = result["lerobot"], result["ours"]
    assert np.shape(chunk_1) == np.shape(chunk_2) == (4, 8)
    np.testing.assert_allclose(chunk_1, first, atol=1e-5)
    np.testing.assert_allclose(chunk_2[0], second, atol=1e-5)
    policy = backend.load(str(directory), python=LEROBOT_PYTHON)  # and through the server
    try:
        assert (policy.info["type"], policy.n_action_steps) == ("diffusion", 4)
        assert policy.select_action(_observation(5), "pick").shape == (4, 8)
    finally:
        policy.close()
