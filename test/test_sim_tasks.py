"""Task specs, the data split, instruction sampling and success checks on hand-built states."""
import numpy as np
import pytest

from vla_ros import arm, vocabulary
from vla_ros.sim import tasks
from vla_ros.sim.state import Body, WorldState

CUBE = 0.0225  # half side of a cube
PLATE_TOP = 0.006


def state(bodies: dict, joints=None, in_hand=()) -> WorldState:
    """A world with the two plates at fixed places plus `bodies` {name: (x, y, bottom)}."""
    all_bodies = {
        "white plate": Body(np.array([0.5, 0.2, 0.003]), 0.003, 0.07),
        "black plate": Body(np.array([0.5, -0.2, 0.003]), 0.003, 0.07),
    }
    for name, (x, y, bottom) in bodies.items():
        all_bodies[name] = Body(np.array([x, y, bottom + CUBE]), CUBE, CUBE)
    q = arm.home_vector() if joints is None else np.asarray(joints, dtype=float)
    return WorldState(0.0, q, np.zeros(3), all_bodies, frozenset(in_hand))


ON_TABLE = state({"red cube": (0.5, 0.0, 0.0), "blue cube": (0.4, 0.1, 0.0)})


@pytest.mark.parametrize(
    "spec, now, expected",
    [
        ({"task": "pick", "object": "red cube"}, state({"red cube": (0.5, 0, 0.08)}, in_hand=["red cube"]), True),
        ({"task": "pick", "object": "red cube"}, state({"red cube": (0.5, 0, 0.03)}, in_hand=["red cube"]), False),
        # thrown up but not held
        ({"task": "pick", "object": "red cube"}, state({"red cube": (0.5, 0, 0.08)}), False),
        ({"task": "place", "object": "red cube", "target": "white plate"},
         state({"red cube": (0.51, 0.21, PLATE_TOP)}), True),
        # still in the hand
        ({"task": "place", "object": "red cube", "target": "white plate"},
         state({"red cube": (0.51, 0.21, PLATE_TOP)}, in_hand=["red cube"]), False),
        # on the other plate
        ({"task": "place", "object": "red cube", "target": "white plate"},
         state({"red cube": (0.5, -0.2, PLATE_TOP)}), False),
        # hanging over the rim
        ({"task": "place", "object": "red cube", "target": "white plate"},
         state({"red cube": (0.5, 0.265, PLATE_TOP)}), False),
        # hovering above the plate
        ({"task": "place", "object": "red cube", "target": "white plate"},
         state({"red cube": (0.5, 0.2, 0.05)}), False),
        ({"task": "stack", "object": "red cube", "target": "blue cube"},
         state({"red cube": (0.405, 0.1, 2 * CUBE), "blue cube": (0.4, 0.1, 0.0)}), True),
        # beside it, not on it
        ({"task": "stack", "object": "red cube", "target": "blue cube"},
         state({"red cube": (0.45, 0.1, 0.0), "blue cube": (0.4, 0.1, 0.0)}), False),
        # the target was lifted as well
        ({"task": "stack", "object": "red cube", "target": "blue cube"},
         state({"red cube": (0.4, 0.1, 2 * CUBE + 0.1), "blue cube": (0.4, 0.1, 0.1)}), False),
        ({"task": "push", "object": "red cube", "direction": "left"}, state({"red cube": (0.5, 0.1, 0.0)}), True),
        ({"task": "push", "object": "red cube", "direction": "left", "distance": 0.05},
         state({"red cube": (0.5, 0.05, 0.0)}), True),
        ({"task": "push", "object": "red cube", "direction": "right"}, state({"red cube": (0.5, 0.1, 0.0)}), False),
        ({"task": "push", "object": "red cube", "direction": "forward"}, state({"red cube": (0.6, 0.0, 0.0)}), True),
        # too short, drifted sideways, carried
        ({"task": "push", "object": "red cube", "direction": "forward"}, state({"red cube": (0.55, 0.0, 0.0)}), False),
        ({"task": "push", "object": "red cube", "direction": "forward"}, state({"red cube": (0.6, 0.06, 0.0)}), False),
        ({"task": "push", "object": "red cube", "direction": "forward"}, state({"red cube": (0.6, 0.0, 0.06)}), False),
        ({"task": "home"}, state({}), True),
        ({"task": "home"}, state({}, joints=arm.home_vector() + np.r_[0, 0, 0, 0.2, 0, 0, 0, 0]), False),
        ({"task": "open_gripper"}, state({}, joints=np.r_[arm.home_vector()[:7], 0.04]), True),
        ({"task": "open_gripper"}, state({}, joints=np.r_[arm.home_vector()[:7], 0.01]), False),
        ({"task": "close_gripper"}, state({}, joints=np.r_[arm.home_vector()[:7], 0.0]), True),
        ({"task": "close_gripper"}, state({}, joints=np.r_[arm.home_vector()[:7], 0.02]), False),
        # the object is not in the scene at all
        ({"task": "pick", "object": "green cube"}, state({}), False),
    ],
)
def test_success_checks_on_hand_built_states(spec, now, expected):
    assert tasks.check_success(tasks.validate(spec), now, ON_TABLE) is expected


@pytest.mark.parametrize(
    "spec, message",
    [
        ("pick", "JSON object"),
        ({"task": "dance"}, "unknown task 'dance'"),
        ({"task": "pick"}, "needs object"),
        ({"task": "pick", "object": "purple cube"}, "unknown object 'purple cube'"),
        ({"task": "pick", "object": "red cube", "target": "white plate"}, "takes no target"),
        ({"task": "place", "object": "red cube", "target": "blue cube"}, "needs a plate"),
        ({"task": "stack", "object": "red cube", "target": "red cube"}, "on itself"),
        ({"task": "stack", "object": "red cube", "target": "white plate"}, "needs an object"),
        ({"task": "push", "object": "red cube", "direction": "up"}, "unknown direction 'up'"),
        ({"task": "push", "object": "red cube", "direction": "left", "distance": 2.0}, "push distance"),
        ({"task": "push", "object": "red cube", "direction": "left", "distance": "far"}, "push distance"),
    ],
)
def test_malformed_specs_are_rejected_with_the_reason(spec, message):
    with pytest.raises(tasks.TaskError, match=message):
        tasks.validate(spec)


def test_validate_fills_the_default_push_distance():
    spec = tasks.validate({"task": "push", "object": "red cube", "direction": "left"})
    assert spec["distance"] == tasks.PUSH_DEFAULT_DISTANCE


def test_split_holds_out_compositions_but_every_word_is_still_trained():
    assert tasks.split_of({"task": "pick", "object": "green cylinder"}) == "unseen"
    assert tasks.split_of({"task": "pick", "object": "green cube"}) == "seen"
    assert tasks.split_of({"task": "stack", "object": "red cube", "target": "blue cylinder"}) == "unseen"
    assert tasks.split_of({"task": "home"}) == "seen"
    seen = [s for kind in vocabulary.TASK_KINDS for s in tasks.compositions(kind) if tasks.split_of(s) == "seen"]
    unseen = [s for kind in vocabulary.TASK_KINDS for s in tasks.compositions(kind) if tasks.split_of(s) == "unseen"]
    assert unseen and len(unseen) < len(seen) / 3
    # Every object is trained with at least 3 of the 4 object tasks, every plate and direction too.
    for name in vocabulary.OBJECTS:
        assert len({s["task"] for s in seen if s.get("object") == name}) >= 3, name
    assert {s["target"] for s in seen if s["task"] == "place"} == set(vocabulary.PLATES)
    assert {s["direction"] for s in seen if s["task"] == "push"} == set(tasks.DIRECTION_VECTORS)
    # Each held-out pattern matches something, so none is a dead rule.
    for pattern in tasks.UNSEEN_COMPOSITIONS:
        assert any(all(s.get(k) == v for k, v in pattern.items()) for s in unseen), pattern


@pytest.mark.parametrize("split", tasks.SPLITS)
def test_sampled_episodes_belong_to_their_split(split):
    rng = np.random.default_rng(0)
    for kind in tasks.kinds_in_split(split):
        for _ in range(10):
            episode = tasks.sample_episode(rng, split, kind)
            assert episode.spec["task"] == kind
            assert tasks.split_of(episode.spec) == ("unseen" if split == "unseen" else "seen")
            templates = (vocabulary.PARAPHRASE_TEMPLATES if split == "paraphrase" else vocabulary.TRAIN_TEMPLATES)[kind]
            assert episode.instruction in {vocabulary.fill(t, episode.spec) for t in templates}


def test_unseen_split_has_no_gripper_or_home_tasks():
    assert tasks.kinds_in_split("unseen") == ("pick", "place", "push", "stack")
    with pytest.raises(ValueError, match="no unseen compositions"):
        tasks.sample_episode(np.random.default_rng(0), "unseen", "home")


def test_home_task_starts_away_from_home():
    rng = np.random.default_rng(3)
    for _ in range(20):
        offsets = tasks.start_arm_offsets({"task": "home"}, rng)
        assert np.all(np.abs(offsets) >= tasks.HOME_START_MIN)
        assert np.all(np.abs(tasks.start_arm_offsets({"task": "pick", "object": "red cube"}, rng)) <= tasks.START_NOISE)


def test_success_watch_counts_a_success_only_after_the_same_task_was_seen_unsolved():
    pick, home = '{"task": "pick", "object": "red cube"}', '{"task": "home"}'
    watch = tasks.SuccessWatch()
    assert not watch.update(pick, True)  # latched from before we watched
    assert watch.update(pick, False) is False and watch.seen_unsolved
    assert watch.update(pick, True) and watch.solved
    assert not watch.update(home, True)  # a new task: its old success does not count
    watch.reset()
    assert not watch.seen_unsolved and not watch.solved
    assert not watch.update(home, True)
