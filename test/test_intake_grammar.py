"""The speech grammar is generated from the vocabulary and accepts exactly its sentences."""
import random

import pocketsphinx

from vla_ros import vocabulary
from vla_ros.intake import grammar


def test_grammar_sentences_are_the_vocabulary():
    phrases = grammar.command_phrases()
    assert set(phrases) == set(vocabulary.all_phrasings()) | set(vocabulary.STOP_PHRASES) | set(
        vocabulary.RESUME_PHRASES)
    assert {w for p in phrases for w in p.split()} == set(vocabulary.words())


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
    assert automaton.n_states < 100 < n_words  # shared prefixes and suffixes, not a list


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


def test_meanings_cover_every_sentence():
    meanings = grammar.sentence_meanings()
    assert set(meanings) == set(grammar.command_phrases())
    red_pick = (("object", "red cube"), ("task", "pick"))
    assert meanings["pick up the red cube"] == meanings["grab the red cube"] == {red_pick}
    # "set X onto Y" is a place and a stack phrasing: it shares a meaning with both.
    assert meanings["set the red cube onto the blue cube"] & meanings["stack the red cube on the blue cube"]
    assert meanings["stop"] == {(("task", "stop"),)}


def test_every_word_has_a_pronunciation():
    decoder = pocketsphinx.Decoder(lm=None, loglevel="FATAL")
    assert [w for w in vocabulary.words() if not decoder.lookup_word(w)] == []
