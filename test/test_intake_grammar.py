"""The speech grammar is generated from the vocabulary and accepts exactly its sentences."""
import random

import pocketsphinx

from vla_ros import vocabulary
from vla_ros.intake import grammar


def test_grammar_sentences_are_the_vocabulary():
    phrases = grammar.command_phrases()
    doable = {p for p in vocabulary.all_phrasings() if vocabulary.parse_instruction(p) is not None}
    assert set(phrases) == doable | set(vocabulary.STOP_PHRASES) | set(vocabulary.RESUME_PHRASES)
    assert {w for p in phrases for w in p.split()} == set(vocabulary.words())
    # Phrasings no one can carry out are not sentences: the recogniser could only confuse a command with them.
    assert "stack the red cube on the red cube" not in phrases
    assert "stack the red cube on the blue cube" in phrases


def test_automaton_accepts_exactly_the_sentences():
    automaton = grammar.command_automaton()
    phrases = grammar.command_phrases()
    assert all(automaton.accepts(p) for p in phrases)
    known = set(phrases)
    rng = random.Random(0)
    words = vocabulary.words()
    # Prefixes, extensions and random word strings are not sentences.
    for phrase in rng.sample(phrases, 50):
        tokens = phrase.split()
        for candidate in (" ".join(tokens[:-1]), phrase + " the", " ".join(rng.choices(words, k=len(tokens)))):
            assert automaton.accepts(candidate) == (candidate in known), candidate


def test_automaton_is_small():
    automaton = grammar.command_automaton()
    n_words = sum(len(p.split()) for p in grammar.command_phrases())
    assert automaton.n_states < 200 < n_words  # shared prefixes and suffixes, not a list


def test_prefix_sentences_and_tiny_vocabularies():
    automaton = grammar.build_automaton(["go", "go home", "go home now", "stop"])
    for sentence, accepted in [("go", True), ("go home", True), ("go home now", True), ("stop", True),
                               ("home", False), ("go now", False), ("", False)]:
        assert automaton.accepts(sentence) == accepted, sentence
    jsgf = grammar.to_jsgf(automaton)
    assert "<NULL>" in jsgf  # "go" ends a sentence and continues one


def test_jsgf_is_valid_for_pocketsphinx():
    decoder = pocketsphinx.Decoder(lm=None, loglevel="FATAL")
    jsgf = grammar.command_jsgf()
    assert jsgf.startswith("#JSGF V1.0;") and "public <command>" in jsgf
    decoder.parse_jsgf(jsgf)  # raises on a syntax error


def test_every_sentence_is_a_command():
    assert all(grammar.command_of(p) is not None for p in grammar.command_phrases())
    assert grammar.command_of("pick up the red cube") == grammar.command_of("grab the red cube") == {
        "task": "pick", "object": "red cube"}
    # Place and stack are told apart by the target, whatever the verb (as the simulator reads them).
    stack = {"task": "stack", "object": "red cube", "target": "blue cube"}
    for sentence in ("stack the red cube on the blue cube", "put the red cube on the blue cube",
                     "set the red cube onto the blue cube"):
        assert grammar.command_of(sentence) == stack, sentence
    assert grammar.command_of("stop") == {"task": "stop"}
    assert grammar.command_of("resume") == {"task": "resume"}
    assert grammar.command_of("tell me a joke") is None


def test_every_word_has_a_pronunciation():
    decoder = pocketsphinx.Decoder(lm=None, loglevel="FATAL")
    assert [w for w in vocabulary.words() if not decoder.lookup_word(w)] == []
