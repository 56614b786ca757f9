"""The built-in policy's data format, training, checkpoints and chunk execution (no simulator needed)."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from vla_ros import arm, cli
from vla_ros.camera.preprocess import policy_frame
from vla_ros.dataset import WRIST_IMAGE, DatasetError, Episode, EpisodeDataset, write_info, write_shard
from vla_ros.policies import backend_uses_wrist_camera
from vla_ros.policies.base import Observation
from vla_ros.policies.builtin.action_space import ACTION_DIMS
from vla_ros.policies.builtin.config import CONFIGS, VLAConfig, named_config
from vla_ros.policies.builtin.language import LanguageEncoder
from vla_ros.policies.builtin.policy import BuiltinPolicy, CheckpointError, checkpoint_config
from vla_ros.policies.builtin.train import task_balanced_weights, train
from vla_ros.policies.builtin.vision_pretrain import POSE_SPREAD, render_scenes
from vla_ros.policies.chunking import policy_blending


@pytest.fixture(scope="module")
def language():
    return LanguageEncoder(max_tokens=16)


def _episode(rng, length, instruction, offset_sign, wrist=False):
    """An episode whose actions depend on the image (bright square's column) and on the instruction.
    With `wrist`, the square is in the hand camera's images and the scene images are blank."""
    images = np.zeros((length, 48, 48, 3), dtype=np.uint8)
    column = rng.integers(4, 40)
    images[:, 20:28, column : column + 6] = 255
    states = np.tile(arm.home_vector(), (length, 1)).astype(np.float32)
    states[:, 0] += np.linspace(0, 0.2, length)
    actions = states + offset_sign * (column / 48.0) * 0.1
    scene, hand = (np.zeros_like(images), images) if wrist else (images, None)
    return Episode(scene, states, actions.astype(np.float32), instruction, {"task": "push"}, True, int(column),
                   wrist_images=hand)


def _make_dataset(root, episodes_per_shard=4, shards=2, seed=0, wrist=False):
    rng = np.random.default_rng(seed)
    write_info(root, fps=10.0, image_size=(48, 48), wrist_image=wrist)
    for shard in range(shards):
        episodes = [_episode(rng, 12, text, sign, wrist) for text, sign in
                    [("push the red cube left", 1.0), ("push the red cube right", -1.0)] * (episodes_per_shard // 2)]
        write_shard(root, shard, episodes, first_episode_index=shard * episodes_per_shard)
    return root


def test_dataset_round_trips(tmp_path):
    root = _make_dataset(tmp_path / "data")
    dataset = EpisodeDataset(root)
    assert len(dataset.episodes) == 8 and len(dataset) == 8 * 12
    first = dataset.episodes[0]
    assert first["language_instruction"] == "push the red cube left" and first["length"] == 12
    start, end = dataset.episode_ranges()[5]
    assert dataset.read("episode_index", start, end).tolist() == [5] * 12
    assert dataset.read("frame_index", start, end).tolist() == list(range(12))
    assert dataset.read("observation.image", start, end).shape == (12, 48, 48, 3)
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["joint_names"] == list(arm.COMMANDED_JOINTS)


def test_a_training_set_too_large_for_memory_is_refused_before_its_frames_are_read(tmp_path, monkeypatch):
    from vla_ros.policies.builtin import train as training
    from vla_ros.policies.builtin.train import load_training_data

    dataset = EpisodeDataset(_make_dataset(tmp_path / "data"))
    config = CONFIGS["tiny"]
    loaded = load_training_data([dataset], config)
    assert loaded.images.shape == (8 * 12, config.image_size, config.image_size, 3)
    np.testing.assert_array_equal(loaded.images[12:24], np.stack(
        [policy_frame(f, config.image_size) for f in dataset.read("observation.image", 12, 24)]))
    monkeypatch.setattr(training, "_IN_MEMORY_LIMIT", loaded.images.nbytes - 1)
    monkeypatch.setattr(EpisodeDataset, "read", lambda *_: pytest.fail("read a frame of a refused training set"))
    with pytest.raises(MemoryError, match="96 frames at 48px exceed the in-memory limit"):
        load_training_data([dataset], config)


def test_dataset_refuses_mismatched_or_missing_parts(tmp_path):
    root = _make_dataset(tmp_path / "data")
    with pytest.raises(DatasetError, match="fps"):
        write_info(root, fps=30.0, image_size=(48, 48))
    (root / "data" / "shard-00001" / "action.npy").unlink()
    with pytest.raises(DatasetError, match="missing action.npy"):
        EpisodeDataset(root)
    with pytest.raises(DatasetError, match="not a vla_ros dataset"):
        EpisodeDataset(tmp_path / "nowhere")


def test_a_wrist_camera_dataset_round_trips_and_needs_the_images_in_every_episode(tmp_path):
    root = _make_dataset(tmp_path / "data", wrist=True)
    dataset = EpisodeDataset(root)
    assert WRIST_IMAGE in dataset.features
    assert dataset.read(WRIST_IMAGE, 0, 12).max() == 255 and dataset.read("observation.image", 0, 12).max() == 0
    with pytest.raises(DatasetError, match="has none"):
        write_shard(root, 2, [_episode(np.random.default_rng(0), 3, "push", 1.0)], first_episode_index=8)
    with pytest.raises(DatasetError, match="features"):  # appending scene-only episodes to it
        write_info(root, fps=10.0, image_size=(48, 48))
    with pytest.raises(DatasetError, match=f"has no {WRIST_IMAGE}"):
        EpisodeDataset(_make_dataset(tmp_path / "scene")).read(WRIST_IMAGE, 0, 1)


def test_the_wrist_camera_config_learns_from_the_hand_images(tmp_path, language):
    # The actions depend on where the square is in the hand camera's images; the scene is blank.
    root = _make_dataset(tmp_path / "data", episodes_per_shard=8, wrist=True)
    config = replace(CONFIGS["tiny"], wrist_camera=True, steps=300)
    with_wrist = train(root, config, tmp_path / "wrist.pt", progress=False, val_every=100)
    scene_only = train(root, replace(config, wrist_camera=False), tmp_path / "scene.pt", progress=False, val_every=100)
    final = {name: np.mean([loss for _, loss in policy.metadata["history"]["loss"][-3:]]) for name, policy in
             (("wrist", with_wrist), ("scene", scene_only))}
    assert final["wrist"] < 0.5 * final["scene"], final

    reloaded = BuiltinPolicy.load(tmp_path / "wrist.pt", language=language)
    assert reloaded.uses_wrist_camera and not scene_only.uses_wrist_camera
    observation = Observation(np.zeros((48, 48, 3), np.uint8), arm.home_vector(),
                              wrist_image=np.random.default_rng(3).integers(0, 255, (48, 48, 3), dtype=np.uint8))
    np.testing.assert_array_equal(with_wrist.select_action(observation, "push the red cube left"),
                                  reloaded.select_action(observation, "push the red cube left"))
    with pytest.raises(ValueError, match="wrist camera"):
        reloaded.select_action(replace(observation, wrist_image=None), "push the red cube left")
    with pytest.raises(DatasetError, match="--wrist-camera"):
        train(_make_dataset(tmp_path / "scene"), config, tmp_path / "x.pt", progress=False)
    # Bringup asks the files whether a policy needs the hand camera, without loading it.
    assert checkpoint_config(tmp_path / "wrist.pt").wrist_camera
    assert backend_uses_wrist_camera("builtin", str(tmp_path / "wrist.pt"))
    assert not backend_uses_wrist_camera("builtin", str(tmp_path / "scene.pt"))
    assert not backend_uses_wrist_camera("builtin", str(tmp_path / "missing.pt"))  # vla_node reports that one
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text('["not", "a", "config"]')
    assert not backend_uses_wrist_camera("lerobot", str(tmp_path / "odd"))
    with pytest.raises(CheckpointError, match="not found"):
        checkpoint_config(tmp_path / "missing.pt")


def test_task_balanced_weights_draw_every_kind_equally():
    kinds = np.array([0] * 90 + [1] * 9 + [2])  # e.g. pick, home, stack frames
    weights = task_balanced_weights(kinds)
    np.testing.assert_allclose(np.bincount(kinds, weights=weights), [1.0, 1.0, 1.0])


def test_tiny_config_trains_and_its_loss_falls(tmp_path, language):
    root = _make_dataset(tmp_path / "data")
    config = CONFIGS["tiny"]
    policy = train(root, config, tmp_path / "ckpt" / "policy.pt", progress=False, val_every=25)
    losses = [loss for _, loss in policy.metadata["history"]["loss"]]
    assert losses[-1] < 0.8 * losses[0], losses
    assert (tmp_path / "ckpt" / "loss.png").is_file()


@pytest.mark.parametrize("head, fusion, space", [("continuous", "film", "joints"), ("tokens", "cross_attention", "joints"),
                                                ("flow", "concat", "joints"), ("continuous", "film", "tcp")])
def test_checkpoint_reloads_to_identical_outputs(tmp_path, language, head, fusion, space):
    root = _make_dataset(tmp_path / "data")
    config = VLAConfig.from_dict({**CONFIGS["tiny"].to_dict(), "head": head, "fusion": fusion, "steps": 3,
                                  "action_space": space, "action_dim": ACTION_DIMS[space]})
    policy = train(root, config, tmp_path / "policy.pt", progress=False)
    reloaded = BuiltinPolicy.load(tmp_path / "policy.pt", language=language)
    image = np.random.default_rng(1).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    state = arm.home_vector()
    policy.reset()
    reloaded.reset()
    a = policy.predict_chunk(image, state, "push the red cube left")
    b = reloaded.predict_chunk(image, state, "push the red cube left")
    assert a.shape == (config.chunk_size, 8)
    np.testing.assert_array_equal(a, b)
    assert reloaded.metadata["trained_on"]["episodes"] == 8


def test_a_phrases_config_trains_reloads_and_tells_its_instructions_apart(tmp_path, language):
    root = _make_dataset(tmp_path / "data")
    config = replace(CONFIGS["tiny"], language_phrases=True, steps=300)
    policy = train(root, config, tmp_path / "policy.pt", progress=False, val_every=50)
    losses = [loss for _, loss in policy.metadata["history"]["loss"]]
    assert losses[-1] < 0.8 * losses[0], losses
    reloaded = BuiltinPolicy.load(tmp_path / "policy.pt", language=language)
    assert reloaded.config.language_phrases
    image = np.zeros((48, 48, 3), np.uint8)
    image[20:28, 30:36] = 255
    left = reloaded.predict_chunk(image, arm.home_vector(), "push the red cube left")
    np.testing.assert_array_equal(left, policy.predict_chunk(image, arm.home_vector(), "push the red cube left"))
    # The two instructions differ only in their target phrase; their first targets go opposite ways.
    right = reloaded.predict_chunk(image, arm.home_vector(), "push the red cube right")
    assert left[0, 0] - right[0, 0] > 0.05


def test_trains_on_several_datasets_together(tmp_path, language):
    # Demonstrations plus DAgger rollouts: two directories, one training set.
    first, second = _make_dataset(tmp_path / "a"), _make_dataset(tmp_path / "b", shards=1, seed=1)
    config = VLAConfig.from_dict({**CONFIGS["tiny"].to_dict(), "steps": 2, "balance_tasks": True})
    policy = train([first, second], config, tmp_path / "policy.pt", progress=False)
    trained_on = policy.metadata["trained_on"]
    assert trained_on["episodes"] == 12 and trained_on["frames"] == 12 * 12
    assert trained_on["datasets"] == [str(first.resolve()), str(second.resolve())]


def test_fine_tuning_starts_from_the_initial_policy(tmp_path, language):
    root = _make_dataset(tmp_path / "data")
    config = VLAConfig.from_dict({**CONFIGS["tiny"].to_dict(), "steps": 3})
    first = train(root, config, tmp_path / "first.pt", progress=False)
    # One step at learning rate 0 changes nothing: the weights and normalisation are the initial policy's.
    tuned = train(root, replace(config, steps=1, learning_rate=0.0, seed=7), tmp_path / "tuned.pt", init=first,
                  progress=False)
    image = np.random.default_rng(2).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    np.testing.assert_array_equal(first.predict_chunk(image, arm.home_vector(), "push the red cube left"),
                                  tuned.predict_chunk(image, arm.home_vector(), "push the red cube left"))
    assert tuned.metadata["initialised_from"]["trained_on"]["episodes"] == 8
    with pytest.raises(ValueError, match="architecture does not match"):
        train(root, replace(config, hidden_dim=32), tmp_path / "wrong.pt", init=first, progress=False)


def test_fine_tuning_with_another_head_keeps_the_trunk_and_starts_the_head_fresh(tmp_path, language):
    from vla_ros.policies.builtin.model import FlowHead

    root = _make_dataset(tmp_path / "data")
    config = VLAConfig.from_dict({**CONFIGS["tiny"].to_dict(), "steps": 3})
    first = train(root, config, tmp_path / "first.pt", progress=False)
    flow = train(root, replace(config, head="flow", steps=1, learning_rate=0.0), tmp_path / "flow.pt", init=first,
                 progress=False)
    assert isinstance(flow.model.head, FlowHead)
    before = first.model.state_dict()
    kept = {k: w for k, w in flow.model.state_dict().items() if not k.startswith("head.")}
    assert kept.keys() == {k for k in before if not k.startswith("head.")}
    assert all(torch.equal(w, before[k]) for k, w in kept.items())
    reloaded = BuiltinPolicy.load(tmp_path / "flow.pt", language=language)
    assert reloaded.config.head == "flow"


def test_train_vision_fine_tunes_the_convolutions_a_frozen_checkpoint_kept(tmp_path, language):
    root = _make_dataset(tmp_path / "data")
    frozen = train(root, replace(CONFIGS["tiny"], steps=2, freeze_vision=True), tmp_path / "frozen.pt", progress=False)

    def fine_tuned(name: str, *flags: str) -> BuiltinPolicy:
        out = tmp_path / f"{name}.pt"
        threads = torch.get_num_threads()
        try:
            assert cli.main(["train", "--data", str(root), "--init", str(tmp_path / "frozen.pt"), "--steps", "2",
                             "--threads", "1", "--out", str(out), *flags]) == 0
        finally:
            torch.set_num_threads(threads)  # the command sets it for the process; later tests train with the default
        return BuiltinPolicy.load(out, language=language)

    def vision_changed(policy: BuiltinPolicy) -> bool:
        before = frozen.model.vision.state_dict()
        return any(not np.array_equal(w.numpy(), before[k].numpy()) for k, w in policy.model.vision.state_dict().items())

    assert not vision_changed(fine_tuned("kept"))
    trained = fine_tuned("trained", "--train-vision")
    assert vision_changed(trained) and not trained.config.freeze_vision


def test_a_new_head_trains_on_another_policys_vision(tmp_path, language):
    root = _make_dataset(tmp_path / "data")
    config = VLAConfig.from_dict({**CONFIGS["tiny"].to_dict(), "steps": 3})
    source = train(root, config, tmp_path / "source.pt", progress=False)
    # Frozen vision at learning rate 0: the encoder and keypoints stay exactly the source's.
    tokens = train(root, replace(config, head="tokens", freeze_vision=True, learning_rate=0.0, steps=1),
                   tmp_path / "tokens.pt", vision_from=source, progress=False)
    for name in ("vision", "keypoints"):
        for key, value in getattr(source.model, name).state_dict().items():
            assert (getattr(tokens.model, name).state_dict()[key] == value).all(), f"{name}.{key}"
    # Everything else starts fresh: the trunk is not the trained source's.
    assert not (tokens.model.trunk[0].weight == source.model.trunk[0].weight).all()
    assert tokens.config.head == "tokens" and tokens.metadata["vision_from"]["trained_on"]["episodes"] == 8
    with pytest.raises(ValueError, match="vision policy's vision does not match"):
        train(root, replace(config, channels=(4, 8, 8, 8)), tmp_path / "wrong.pt", vision_from=source, progress=False)
    with pytest.raises(ValueError, match="not both"):
        train(root, config, tmp_path / "both.pt", init=source, vision_from=source, progress=False)


def test_corrupted_or_mismatched_checkpoints_give_clear_errors(tmp_path, language):
    root = _make_dataset(tmp_path / "data")
    path = tmp_path / "policy.pt"
    train(root, VLAConfig.from_dict({**CONFIGS["tiny"].to_dict(), "steps": 1}), path, progress=False)
    from vla_ros.policies import load_policy

    assert isinstance(load_policy(str(path)), BuiltinPolicy)  # the registry finds .pt checkpoints
    with pytest.raises(CheckpointError, match="not found"):
        BuiltinPolicy.load(tmp_path / "missing.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        BuiltinPolicy.load(tmp_path / "garbage.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError):
        BuiltinPolicy.load(truncated)
    import torch

    data = torch.load(path, weights_only=True)
    data["config"]["hidden_dim"] = 128  # weights no longer fit the architecture
    torch.save(data, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="does not match"):
        BuiltinPolicy.load(tmp_path / "mismatch.pt")


def test_select_action_executes_the_chunk_from_its_lead_entry(tmp_path, language):
    root = _make_dataset(tmp_path / "data")
    policy = train(root, replace(CONFIGS["tiny"], steps=2), tmp_path / "policy.pt", progress=False)
    image = np.zeros((48, 48, 3), np.uint8)
    chunk = policy.predict_chunk(image, arm.home_vector(), "go home")
    led = policy.select_action(Observation(image, arm.home_vector()), "go home")
    lead = policy.config.lead_steps
    assert lead > 0 and led.shape == (policy.config.chunk_size - lead, 8)
    np.testing.assert_array_equal(led, chunk[lead:])
    with pytest.raises(ValueError, match="lead_steps must be in"):
        replace(CONFIGS["tiny"], lead_steps=CONFIGS["tiny"].chunk_size)


def test_the_policy_asks_for_its_configs_chunk_blending(tmp_path, language):
    root = _make_dataset(tmp_path / "data")
    config = replace(CONFIGS["tiny"], steps=2, aggregation="ensemble", temporal_ensemble_decay=0.5)
    trained = train(root, config, tmp_path / "policy.pt", progress=False)
    assert policy_blending(trained) == policy_blending(BuiltinPolicy.load(tmp_path / "policy.pt")) == ("ensemble", 0.5)


def test_unknown_config_names_and_fields_are_rejected():
    with pytest.raises(ValueError, match="unknown policy config"):
        named_config("huge")
    with pytest.raises(ValueError, match="unknown VLAConfig fields"):
        VLAConfig.from_dict({"layers": 3})
    with pytest.raises(ValueError, match="head must be"):
        VLAConfig(head="transformer")
    with pytest.raises(ValueError, match="action_space must be"):
        VLAConfig(action_space="cartesian")
    with pytest.raises(ValueError, match="has 7 values per target, got action_dim 8"):
        VLAConfig(action_space="tcp")
    with pytest.raises(ValueError, match="vision_pretrain_frame must be"):
        VLAConfig(vision_pretrain_frame="camera")
    with pytest.raises(ValueError, match="temporal_ensemble_decay must be >= 0"):
        VLAConfig(temporal_ensemble_decay=float("nan"))


def test_int8_policy_quantises_the_linear_layers_and_stays_close(language):
    import torch

    from vla_ros.policies.builtin.model import VLAModel
    from vla_ros.policies.builtin.policy import Normalization

    torch.manual_seed(0)
    config = CONFIGS["tiny"]
    k = config.chunk_size
    policy = BuiltinPolicy(config, VLAModel(config), Normalization(np.zeros(8, np.float32), np.ones(8, np.float32),
                                                                   np.zeros((k, 8), np.float32),
                                                                   np.ones((k, 8), np.float32)), language=language)
    quantised = policy.int8()
    dynamic_linear = torch.ao.nn.quantized.dynamic.Linear
    assert any(isinstance(m, dynamic_linear) for m in quantised.model.modules())
    assert not any(type(m) is torch.nn.Linear for m in quantised.model.modules())
    assert not any(isinstance(m, dynamic_linear) for m in policy.model.modules())  # the original is untouched
    image = np.random.default_rng(2).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    a = policy.predict_chunk(image, arm.home_vector(), "pick up the red cube")
    b = quantised.predict_chunk(image, arm.home_vector(), "pick up the red cube")
    offsets_a, offsets_b = a - arm.home_vector(), b - arm.home_vector()
    assert np.abs(offsets_a - offsets_b).max() < 0.1 * np.abs(offsets_a).max() + 1e-3


def _scene_episodes(length=6):
    """Episodes whose task names real objects: their seeds lay out real scenes (images are blank)."""
    tasks = [{"task": "pick", "object": "red cube"}, {"task": "place", "object": "blue cylinder", "target": "white plate"},
             {"task": "home"}, {"task": "stack", "object": "green cube", "target": "yellow cylinder"}]
    states = np.tile(arm.home_vector(), (length, 1)).astype(np.float32)
    return [Episode(np.zeros((length, 48, 48, 3), np.uint8), states, states + 0.01, f"task {i}", task, True, 100 + i)
            for i, task in enumerate(tasks)]


def test_grounding_targets_are_where_the_seeded_scene_puts_the_named_objects():
    from vla_ros.policies.builtin.grounding import dataset_grounding
    from vla_ros.sim.world import SimWorld

    episodes = [{"seed": e.seed, "task": e.task} for e in _scene_episodes()]
    positions, mask = dataset_grounding(episodes)
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]]
    world = SimWorld(image_size=32)
    world.reset(103, episodes[3]["task"])
    poses = world.object_poses()
    np.testing.assert_allclose(positions[3], [*poses["green cube"][0][:2], *poses["yellow cylinder"][0][:2]], atol=1e-6)
    assert np.all(np.abs(positions[mask > 0]) < 1.0)  # on the table, in metres
    world.close()


def test_a_grounded_config_trains_its_grounding_head_and_fine_tunes_from_an_ungrounded_policy(tmp_path, language):
    root = tmp_path / "scenes"
    write_info(root, fps=10.0, image_size=(48, 48))
    write_shard(root, 0, _scene_episodes(), first_episode_index=0)
    config = VLAConfig.from_dict({**CONFIGS["tiny"].to_dict(), "steps": 3})
    plain = train(root, config, tmp_path / "plain.pt", progress=False, val_fraction=0.5)
    grounded = train(root, replace(config, grounding_weight=1.0), tmp_path / "grounded.pt", init=plain,
                     progress=False, val_fraction=0.5)
    errors = grounded.metadata["history"]["val_grounding_error_m"]
    assert errors and all(np.isfinite(e) and e > 0 for _, e in errors)
    reloaded = BuiltinPolicy.load(tmp_path / "grounded.pt", language=language)
    image = np.zeros((48, 48, 3), np.uint8)
    np.testing.assert_array_equal(grounded.predict_chunk(image, arm.home_vector(), "task 0"),
                                  reloaded.predict_chunk(image, arm.home_vector(), "task 0"))


def test_the_object_label_holds_until_the_fingers_first_close_and_through_a_push():
    from vla_ros.policies.builtin.grounding import object_at_start

    fingers = np.array([0.04, 0.04, 0.03, 0.021, 0.04, 0.04])
    assert object_at_start(fingers, {"task": "pick"}).tolist() == [True, True, False, False, False, False]
    assert object_at_start(fingers, {"task": "push"}).all()


def _named_setup(tmp_path):
    """A dataset of real scene layouts and a tiny config that named positions can be added to."""
    root = tmp_path / "scenes"
    write_info(root, fps=10.0, image_size=(48, 48))
    write_shard(root, 0, _scene_episodes(), first_episode_index=0)
    config = VLAConfig.from_dict({**CONFIGS["tiny"].to_dict(), "steps": 3, "language_phrases": True,
                                  "freeze_vision": True, "named_pretrain_scenes": 40, "named_pretrain_steps": 100})
    return root, config


def test_named_positions_are_pretrained_on_rendered_scenes_frozen_and_added_to_a_fine_tune(tmp_path, language):
    with pytest.raises(ValueError, match="named_positions needs language_phrases"):
        replace(CONFIGS["tiny"], named_positions=True, freeze_vision=True)
    with pytest.raises(ValueError, match="and freeze_vision"):
        replace(CONFIGS["tiny"], named_positions=True, language_phrases=True)
    assert named_config("tcp_named").named_positions
    root, config = _named_setup(tmp_path)
    plain = train(root, config, tmp_path / "plain.pt", progress=False, val_fraction=0.5)
    image = np.random.default_rng(3).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    named = replace(config, named_positions=True)
    # At learning rate 0 the added trunk inputs keep their zero weights: the actions are the initial policy's.
    start = train(root, replace(named, steps=1, learning_rate=0.0), tmp_path / "start.pt", init=plain, progress=False,
                  val_fraction=0.5)
    np.testing.assert_allclose(start.predict_chunk(image, arm.home_vector(), "stack the green cube on the yellow cylinder"),
                               plain.predict_chunk(image, arm.home_vector(), "stack the green cube on the yellow cylinder"),
                               atol=1e-6)
    measured = start.metadata["history"]["named_pretrain"]
    assert measured["scenes"] == 40 and np.isfinite(measured["error_m"]), measured
    # Behaviour cloning leaves the pretrained locator as it was (the same seed pretrains it the same).
    tuned = train(root, replace(named, learning_rate=1e-2), tmp_path / "tuned.pt", init=plain, progress=False,
                  val_fraction=0.5)
    for (name, a), b in zip(start.model.named_positions.state_dict().items(),
                            tuned.model.named_positions.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert not torch.equal(start.model.trunk[0].weight, tuned.model.trunk[0].weight)
    reloaded = BuiltinPolicy.load(tmp_path / "tuned.pt", language=language)
    assert reloaded.config.named_positions
    np.testing.assert_array_equal(tuned.predict_chunk(image, arm.home_vector(), "pick up the red cube"),
                                  reloaded.predict_chunk(image, arm.home_vector(), "pick up the red cube"))
    # The other way round, a policy with named positions cannot seed one without them.
    with pytest.raises(ValueError, match="architecture does not match"):
        train(root, config, tmp_path / "wrong.pt", init=tuned, progress=False, val_fraction=0.5)


def test_named_positions_from_the_hand_are_the_table_positions_minus_the_tool_centre_point(tmp_path, language):
    from vla_ros import kinematics
    from vla_ros.policies.builtin.model import NAMED_DIM

    with pytest.raises(ValueError, match="named_frame must be"):
        VLAConfig(named_frame="camera")
    assert named_config("tcp_named_hand").needs_tcp and not named_config("tcp_named").needs_tcp
    root, config = _named_setup(tmp_path)
    table = train(root, replace(config, named_positions=True), tmp_path / "table.pt", progress=False, val_fraction=0.5)
    # From a table-frame policy: the same locator, its trunk inputs restarted at zero weight.
    hand = train(root, replace(table.config, named_frame="tcp", steps=1, learning_rate=0.0), tmp_path / "hand.pt",
                 init=table, progress=False, val_fraction=0.5)
    for (name, a), b in zip(table.model.named_positions.state_dict().items(),
                            hand.model.named_positions.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert not hand.model.trunk[0].weight[:, -NAMED_DIM:].any()
    assert table.model.trunk[0].weight[:, -NAMED_DIM:].any()
    # The inputs are the located (x, y) minus the tool centre point's, in the locator's units.
    state = arm.home_vector()
    state[0] += 0.3  # the hand away from home
    image = np.random.default_rng(3).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    inputs = hand.preprocess(image, state, "stack the green cube on the yellow cylinder")
    tcp = kinematics.tcp_pose(state[:7].astype(np.float64))[0][:2]
    np.testing.assert_allclose(inputs["tcp"][0].numpy(), tcp, atol=1e-6)
    located = hand.model.named_positions
    with torch.no_grad():
        on_table = located(hand.model.plain_keypoints(inputs["image"]), inputs["tokens"], inputs["mask"])
        from_hand = hand.model.named_inputs(inputs["image"], inputs["tokens"], inputs["mask"], inputs["tcp"])
    metres = (on_table.view(2, 2) * located.SCALE + located.mean).numpy()
    np.testing.assert_allclose((from_hand.view(2, 2) * located.SCALE).numpy(), metres - tcp, atol=1e-5)
    with pytest.raises(ValueError, match="needs the tool centre point"):
        hand.model.named_inputs(inputs["image"], inputs["tokens"], inputs["mask"])
    reloaded = BuiltinPolicy.load(tmp_path / "hand.pt", language=language)
    assert reloaded.config.needs_tcp
    np.testing.assert_allclose(hand.predict_chunk(image, state, "pick up the red cube"),
                               reloaded.predict_chunk(image, state, "pick up the red cube"), atol=1e-6)


def test_dropping_retreats_leaves_out_what_a_successful_place_or_stack_recorded_after_its_success(tmp_path):
    from vla_ros.collection import STEPS_AFTER_SUCCESS
    from vla_ros.policies.builtin.train import load_training_data, training_range

    root, config = _named_setup(tmp_path)  # pick, place, home, stack: 6 frames each, all successful
    dataset = EpisodeDataset(root)
    assert len(load_training_data([dataset], config).states) == 24
    dropped = load_training_data([dataset], replace(config, drop_retreats=True))
    kept = [6, 6 - STEPS_AFTER_SUCCESS, 6, 6 - STEPS_AFTER_SUCCESS]
    assert np.bincount(dropped.episode_of_frame).tolist() == kept
    assert len(dropped.offsets) == sum(kept)
    # A failed stack never reached its success: all of it trains.
    failed = {"task": {"task": "stack"}, "success": False}
    assert training_range((10, 40), failed, replace(config, drop_retreats=True)) == (10, 40)


def test_named_positions_learn_where_a_named_object_is_from_the_shipped_vision(language):
    from vla_ros.policies.builtin.model import VLAModel
    from vla_ros.policies.builtin.policy import SHIPPED_CHECKPOINT
    from vla_ros.policies.builtin.vision_pretrain import pretrain_named_positions

    shipped = BuiltinPolicy.load(SHIPPED_CHECKPOINT, language=language)
    config = replace(shipped.config, named_positions=True, named_pretrain_scenes=300, named_pretrain_steps=400)
    model = VLAModel(config)
    for part in ("vision", "keypoints"):
        getattr(model, part).load_state_dict(getattr(shipped.model, part).state_dict())
    measured = pretrain_named_positions(model, config, language, progress=False)
    assert measured["error_m"] < 0.5 * measured["mean_position_error_m"], measured


def test_vision_pretraining_learns_where_objects_are_and_freezing_keeps_it(tmp_path, language):
    # Real renders of the simulated table; tiny sizes so it stays a few seconds.
    config = replace(CONFIGS["tiny"], steps=2, vision_pretrain_scenes=200, vision_pretrain_steps=600,
                     freeze_vision=True, batch_size=32)
    policy = train(_make_dataset(tmp_path / "data"), config, tmp_path / "policy.pt", progress=False)
    measured = policy.metadata["history"]["vision_pretrain"]
    assert measured["scenes"] == 200 and measured["held_out_scenes"] == 20
    # Better than before training and than always answering the mean position.
    assert measured["error_m"] < 0.85 * min(measured["error_before_m"], measured["mean_position_error_m"]), measured
    # Behaviour cloning leaves the frozen convolutions as (seeded) pretraining made them.
    longer = train(tmp_path / "data", replace(config, steps=4), tmp_path / "longer.pt", progress=False)
    for name, weights in policy.model.vision.state_dict().items():
        np.testing.assert_array_equal(weights.numpy(), longer.model.vision.state_dict()[name].numpy(), err_msg=name)
    assert not np.array_equal(policy.model.trunk[0].weight.detach().numpy(), longer.model.trunk[0].weight.detach().numpy())
    with pytest.raises(ValueError, match="vision_pretrain_scenes"):
        replace(CONFIGS["tiny"], vision_pretrain_steps=10)


def test_scenes_in_the_tcp_frame_pose_the_hand_over_the_objects_and_measure_from_it():
    on_table = render_scenes(40, 2, 48)
    from_hand = render_scenes(40, 2, 48, frame="tcp")
    np.testing.assert_array_equal(on_table.present, from_hand.present)  # the same layouts
    present = on_table.present > 0
    # Each scene's objects all move by one vector, minus the hand's (x, y)...
    hand = on_table.positions - from_hand.positions
    for scene in range(40):
        spread = hand[scene][present[scene]].std(axis=0)
        np.testing.assert_allclose(spread, 0.0, atol=1e-6)
    hand_xy = np.array([hand[s][present[s]][0] for s in range(40)])
    # ...and in most scenes the hand was posed near one of them, not left at its start pose.
    nearest = np.array([np.linalg.norm(on_table.positions[s][present[s]] - hand_xy[s], axis=-1).min()
                        for s in range(40)])
    assert np.mean(nearest < 3 * POSE_SPREAD) > 0.6, nearest
    assert len(np.unique(hand_xy.round(3), axis=0)) == 40
    assert not np.array_equal(on_table.images, from_hand.images)
