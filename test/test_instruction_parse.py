"""vocabulary.parse_instruction: every phrasing of every task spec parses back to that spec; junk does not."""
import numpy as np
import pytest

from vla_ros import vocabulary
from vla_ros.sim import tasks


def _all_specs() -> list[dict]:
    return [spec for kind in vocabulary.TASK_KINDS for spec in tasks.compositions(kind)]


def test_every_template_phrasing_of_every_spec_round_trips():
    for spec in _all_specs():
        for templates in (vocabulary.TRAIN_TEMPLATES, vocabulary.PARAPHRASE_TEMPLATES):
            for template in templates[spec["task"]]:
                assert vocabulary.parse_instruction(vocabulary.fill(template, spec)) == spec, template


def test_instruction_for_round_trips_through_the_simulators_validation():
    rng = np.random.default_rng(0)
    for spec in _all_specs():
        for paraphrase in (False, True):
            parsed = vocabulary.parse_instruction(tasks.instruction_for(spec, rng, paraphrase))
            assert tasks.validate(parsed) == tasks.validate(spec)


def test_case_punctuation_and_spacing_do_not_matter():
    expected = {"task": "push", "object": "blue cylinder", "direction": "left"}
    assert vocabulary.parse_instruction("  Push the BLUE cylinder, to the left!  ") == expected
    assert vocabulary.parse_instruction("Open your hand.") == {"task": "open_gripper"}


def test_place_or_stack_follows_the_target():
    # "put ... on the ..." is a place phrasing, "stack ... on the ..." a stack one: the target decides.
    assert vocabulary.parse_instruction("put the red cube on the blue cube") == {
        "task": "stack", "object": "red cube", "target": "blue cube"}
    assert vocabulary.parse_instruction("stack the red cube on the black plate") == {
        "task": "place", "object": "red cube", "target": "black plate"}


@pytest.mark.parametrize("text", [
    "", "   ", "stop", "resume", "hello robot", "pick up the", "pick up the purple cube", "pick up the red sphere",
    "pick up the red cube and the blue cube", "pick up the red cube please", "push the red cube up",
    "push the red cube", "stack the red cube on the red cube", "place the white plate on the red cube",
    "go home now", "gripper open", "red cube",
])
def test_junk_and_impossible_requests_parse_to_none(text):
    assert vocabulary.parse_instruction(text) is None
