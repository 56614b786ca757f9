"""Reading new phrasings as the trained instruction they mean (MiniLM sentence vectors, real weights)."""
import numpy as np
import pytest

from vla_ros import arm, vocabulary
from vla_ros.policies.builtin.config import CONFIGS
from vla_ros.policies.builtin.language import (
    PHRASES,
    InstructionMatcher,
    LanguageEncoder,
    instruction_phrases,
    slot_words,
)
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


@pytest.mark.parametrize("text, phrases", [
    ("stack the red cube on the blue cylinder", ("stack the on the", "red cube", "blue cylinder")),
    ("Push the Red cube to the left.", ("push the to the", "red cube", "left")),
    ("set the green cylinder onto the black plate", ("set the onto the", "green cylinder", "black plate")),
    ("go home", ("go home", "", "")),
    ("pick up the cube", ("pick up the", "cube", "")),  # no colour: the shape alone is still the object
    ("", ("", "", "")),
])
def test_instruction_phrases_are_the_action_the_object_and_the_target(text, phrases):
    assert instruction_phrases(text) == phrases


def test_every_phrasing_of_a_task_names_its_object_and_target_as_its_phrases():
    for text in vocabulary.all_phrasings():
        spec = vocabulary.parse_instruction(text)
        if spec is None or "object" not in spec:
            continue
        _, named_object, target = instruction_phrases(text)
        assert (named_object, target) == (spec["object"], spec.get("target", spec.get("direction", ""))), text


def test_an_object_is_encoded_alike_whatever_is_to_be_done_with_it():
    encoder = LanguageEncoder(max_tokens=16)
    picked, pick_mask = encoder.encode("pick up the yellow cube", phrases=True)
    pushed, push_mask = encoder.encode("push the yellow cube left", phrases=True)
    assert picked.shape == (len(PHRASES) * 16, 384) and pick_mask.shape == (len(PHRASES) * 16,)
    run = slice(16, 32)  # the object's tokens: the same, whereas the sentences' tokens all differ
    np.testing.assert_array_equal(picked[run], pushed[run])
    np.testing.assert_array_equal(pick_mask[run], push_mask[run])
    assert not np.allclose(picked[:16], pushed[:16])
    whole_pick, _ = encoder.encode("pick up the yellow cube")
    whole_push, _ = encoder.encode("push the yellow cube left")
    assert not np.allclose(whole_pick[4], whole_push[3])  # "yellow" in context differs


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
