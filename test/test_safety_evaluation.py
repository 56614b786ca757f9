"""The safety filter in the evaluator's loop: SafetyCommandFilter with and without the simulator."""
import math

import numpy as np

from vla_ros import arm
from vla_ros.safety import load_config
from vla_ros.safety.command_filter import SafetyCommandFilter

HOME = arm.home_vector()


def test_a_slow_policy_is_followed_and_bad_targets_are_contained():
    command_filter = SafetyCommandFilter(control_period=0.1)
    command_filter.reset(HOME)
    commands, targets = [], []
    for k in range(1, 21):  # 0.2 rad/s on joint 1, one target per control period
        targets.append(HOME + np.eye(8)[0] * 0.02 * k)
        commands.append(command_filter(targets[-1], commands[-1] if commands else HOME))
    np.testing.assert_allclose(commands[-1], targets[-1], atol=1e-9)
    assert command_filter.counts()["limited"] <= 2  # only the start from rest may lag

    far = HOME + np.r_[1.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    command = command_filter(far, commands[-1])
    assert np.max(np.abs(command - commands[-1])) < 0.3 and command_filter.counts()["limited"] >= 1
    nan = command_filter([math.nan] * 8, command)
    np.testing.assert_allclose(nan[1:], command[1:])  # still heading for the last good target, nothing new
    assert command_filter.counts()["rejected"] == 1


def test_expert_episode_with_the_filter_in_the_loop_succeeds_within_limits():
    from vla_ros.evaluation import evaluate

    class Recording(SafetyCommandFilter):
        """Keeps each episode's commands, starting with the arm's position at the reset."""

        def __init__(self):
            super().__init__()
            self.episodes = []

        def reset(self, joint_positions):
            super().reset(joint_positions)
            self.episodes.append([joint_positions.copy()])

        def __call__(self, target, joint_positions):
            command = super().__call__(target, joint_positions)
            self.episodes[-1].append(command)
            return command

    recording = Recording()
    report = evaluate("expert", 2, seed=5, split="seen", image_size=64, command_filter=recording, progress=False)
    assert report["success_rate"] == 1.0
    assert report["safety"]["filter"] == "safety"
    assert report["safety"]["targets"] == sum(len(commands) - 1 for commands in recording.episodes)
    limits = load_config().joint_limits
    for commands in recording.episodes:
        commands = np.array(commands)
        # One control period apart, commands move at most a period's travel at the velocity limit.
        assert np.all(np.abs(np.diff(commands, axis=0)) <= limits.velocity * 0.1 + 1e-9)
        assert np.all((commands[1:] >= limits.lower) & (commands[1:] <= limits.upper))
