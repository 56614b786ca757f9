"""Reading new phrasings as the trained instruction they mean (MiniLM sentence vectors, real weights)."""
import numpy as np
import pytest

from vla_ros import arm
from vla_ros.policies.builtin.config import CONFIGS
from vla_ros.policies.builtin.language import InstructionMatcher, LanguageEncoder, slot_words
from vla_ros.policies.builtin.model import VLAModel
from vla_ros.policies.builtin.policy import BuiltinPolicy, Normalization

TRAINED = ["pick up the red cube", "pick up the blue cube", "push the red cube left", "push the red cube right",
           "stack the red cube on the blue cylinder", "place the red cube on the white plate", "go home",
           "open the gripper", "close the gripper"]


@pytest.fixture(scope="module")
def matcher():
    return InstructionMatcher(TRAINED, LanguageEncoder(max_tokens=16))


def test_slot_words_are_the_named_things_in_order():
    assert slot_words("Set the red cube onto the white plate.") == ("red", "cube", "white", "plate")
    assert slot_words("go back home") == ()


@pytest.mark.parametrize("phrasing, meaning", [
    ("grab the red cube", "pick up the red cube"),
    ("lift the blue cube", "pick up the blue cube"),
    ("nudge the red cube to the left", "push the red cube left"),
    ("slide the red cube right", "push the red cube right"),
    ("set the red cube onto the blue cylinder", "stack the red cube on the blue cylinder"),
    ("set the red cube onto the white plate", "place the red cube on the white plate"),
    ("shut the gripper", "close the gripper"),
    ("Go home.", "go home"),
])
def test_paraphrases_are_read_as_the_trained_instruction(matcher, phrasing, meaning):
    assert matcher.match(phrasing) == meaning


@pytest.mark.parametrize("phrasing", [
    "pick up the green cylinder",  # a new composition: no trained instruction names a green cylinder alone
    "push the red cube forward",  # nor pushes it forward
    "what is the weather",  # unrelated: too far from every trained instruction
    "open the door",
])
def test_new_compositions_and_unrelated_requests_stay_as_they_are(matcher, phrasing):
    assert matcher.match(phrasing) == phrasing


def test_the_policy_reads_instructions_through_its_trained_list():
    config = CONFIGS["tiny"]
    stats = Normalization(np.zeros(8, np.float32), np.ones(8, np.float32),
                          np.zeros((config.chunk_size, 8), np.float32), np.ones((config.chunk_size, 8), np.float32))
    language = LanguageEncoder(config.max_tokens)
    policy = BuiltinPolicy(config, VLAModel(config), stats, {"trained_instructions": TRAINED}, language)
    assert policy.understood("grab the red cube") == "pick up the red cube"
    image = np.zeros((48, 48, 3), np.uint8)
    np.testing.assert_array_equal(policy.predict_chunk(image, arm.home_vector(), "grab the red cube"),
                                  policy.predict_chunk(image, arm.home_vector(), "pick up the red cube"))
    without_list = BuiltinPolicy(config, policy.model, stats, {}, language)
    assert without_list.understood("grab the red cube") == "grab the red cube"
