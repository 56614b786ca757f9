"""Chunk aggregation: which target each control step gets when chunks overlap."""
import numpy as np
import pytest

from vla_ros import arm
from vla_ros.policies.chunking import DEFAULT_DECAY, ChunkAggregator, policy_blending


def _two_overlapping(mode):
    aggregator = ChunkAggregator(mode, decay=0.5)
    aggregator.add(np.zeros((4, 2)), start_step=0)
    aggregator.add(np.ones((4, 2)), start_step=1)
    return aggregator


def test_ensemble_weights_the_oldest_chunk_most():
    aggregator = _two_overlapping("ensemble")
    assert np.all(aggregator.target(0) == 0)
    expected = np.exp(-0.5) / (1 + np.exp(-0.5))  # oldest weight 1, newest exp(-0.5)
    np.testing.assert_allclose(aggregator.target(1), expected)
    np.testing.assert_allclose(aggregator.target(4), 1.0)  # only the second chunk reaches step 4


def test_latest_and_average_modes():
    np.testing.assert_allclose(_two_overlapping("latest").target(2), 1.0)
    np.testing.assert_allclose(_two_overlapping("average").target(2), 0.5)


def test_steps_past_every_chunk_have_no_target_and_expired_chunks_are_dropped():
    aggregator = _two_overlapping("ensemble")
    assert aggregator.target(5) is None
    aggregator.add(np.full((2, 2), 3.0), start_step=5)
    np.testing.assert_allclose(aggregator.target(5), 3.0)  # the expired chunks no longer blend in


def test_bad_modes_and_chunks_are_rejected():
    with pytest.raises(ValueError, match="aggregation mode"):
        ChunkAggregator("median")
    with pytest.raises(ValueError, match="chunk must be"):
        ChunkAggregator().add(np.zeros(8), 0)


class _HoldStill:
    """A policy that asks to stay where it is, K=4 steps at a time, re-planning every 2 steps."""

    n_action_steps = 2
    aggregation = "ensemble"

    def __init__(self):
        self.calls = 0

    def reset(self):
        pass

    def select_action(self, observation, instruction):
        self.calls += 1
        return np.tile(observation.state, (4, 1))


def test_evaluator_queries_the_policy_every_n_action_steps():
    from vla_ros.evaluation import Evaluator, plan_episodes
    from vla_ros.sim.world import SimWorld

    world = SimWorld(image_size=48)
    policy = _HoldStill()
    result = Evaluator(world, policy).run_episode(plan_episodes(1, 0, "seen")[0])
    world.close()
    assert not result.success and result.steps > 10  # holding still solves nothing: it runs to the time limit
    assert policy.calls == -(-result.steps // 2)


class _CountingUp:
    """Every chunk holds one value, the number of calls so far (home + 0.001 per call), for 4 steps."""

    n_action_steps = 1
    aggregation = "ensemble"

    def __init__(self, ensemble_decay):
        self.ensemble_decay = ensemble_decay
        self.calls = 0

    def reset(self):
        pass

    def select_action(self, observation, instruction):
        self.calls += 1
        return np.tile(arm.home_vector() + 0.001 * self.calls, (4, 1))


@pytest.mark.parametrize("decay", [0.0, 2.0])
def test_evaluator_blends_with_the_policys_own_decay(decay):
    from vla_ros.evaluation import Evaluator, plan_episodes
    from vla_ros.sim.world import SimWorld

    class Recording(Evaluator):
        def _execute(self, target):
            targets.append(target)
            super()._execute(target)

    targets, world = [], SimWorld(image_size=48)
    Recording(world, _CountingUp(decay)).run_episode(plan_episodes(1, 0, "seen")[0])
    world.close()
    # From step 3 on, the chunks of calls step-2 .. step+1 cover each step, the oldest weighted most.
    weights = np.exp(-decay * np.arange(4))
    for step in (3, 10):
        offset = np.average(0.001 * np.arange(step - 2, step + 2), weights=weights)
        np.testing.assert_allclose(targets[step], arm.home_vector() + offset)


def test_policy_blending_defaults_for_a_policy_that_names_none():
    assert policy_blending(object()) == ("latest", DEFAULT_DECAY)
