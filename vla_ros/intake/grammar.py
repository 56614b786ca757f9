"""The speech grammar, generated from the task vocabulary (never kept by hand).

Every phrasing the task suite can produce (`vocabulary.all_phrasings()`), every
stop phrase and every resume phrase is a sentence of the grammar, and nothing
else is. The sentences are compiled into the minimal deterministic automaton
that accepts exactly them (shared prefixes and shared suffixes: "... the red
cube" is one path whatever came before), which keeps the recogniser's search
small: a flat list of the ~700 sentences decodes about ten times slower.

The automaton is written out as JSGF (one rule per state, for people and tools
that read grammars) and handed to the recogniser as a finite-state grammar.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from vla_ros import vocabulary

GRAMMAR_NAME = "vla_ros_commands"


def command_phrases() -> list[str]:
    """Every sentence the recogniser may return: task phrasings, stop and resume phrases."""
    phrases = vocabulary.all_phrasings() + list(vocabulary.STOP_PHRASES) + list(vocabulary.RESUME_PHRASES)
    return sorted(set(phrases))


@dataclass(frozen=True)
class Automaton:
    """A minimal acyclic DFA over words. State 0 is the start state."""

    transitions: tuple[tuple[int, int, str], ...]  # (from state, to state, word)
    finals: frozenset[int]
    n_states: int

    def accepts(self, sentence: str) -> bool:
        table = {(src, word): dst for src, dst, word in self.transitions}
        state = 0
        for word in sentence.split():
            if (state, word) not in table:
                return False
            state = table[(state, word)]
        return state in self.finals

    def outgoing(self, state: int) -> list[tuple[str, int]]:
        return sorted((word, dst) for src, dst, word in self.transitions if src == state)


def build_automaton(sentences: list[str]) -> Automaton:
    """The minimal DFA accepting exactly `sentences` (lists of space-separated words)."""
    # A trie first; then states with the same finality and the same outgoing edges
    # (to already-merged children) are merged, from the leaves up.
    trie: list[dict[str, int]] = [{}]
    final = [False]
    for sentence in sentences:
        state = 0
        for word in sentence.split():
            if word not in trie[state]:
                trie.append({})
                final.append(False)
                trie[state][word] = len(trie) - 1
            state = trie[state][word]
        final[state] = True

    merged: dict[int, int] = {}  # trie state -> minimal state
    register: dict[tuple, int] = {}  # signature -> minimal state

    def minimise(state: int) -> int:
        children = tuple(sorted((word, minimise(child)) for word, child in trie[state].items()))
        signature = (final[state], children)
        if signature not in register:
            register[signature] = len(register)
        merged[state] = register[signature]
        return merged[state]

    minimise(0)
    # Renumber so that the start state is 0 and numbers grow along the paths (readable JSGF).
    order: dict[int, int] = {}
    queue = [0]
    while queue:
        state = queue.pop(0)
        if merged[state] in order:
            continue
        order[merged[state]] = len(order)
        queue.extend(child for _, child in sorted(trie[state].items()))
    transitions = set()
    finals = set()
    for state, children in enumerate(trie):
        src = order[merged[state]]
        if final[state]:
            finals.add(src)
        for word, child in children.items():
            transitions.add((src, order[merged[child]], word))
    return Automaton(tuple(sorted(transitions)), frozenset(finals), len(order))


def to_jsgf(automaton: Automaton, name: str = GRAMMAR_NAME) -> str:
    """The automaton as a JSGF grammar: public rule <command>, one private rule <sN> per state."""
    lines = ["#JSGF V1.0;", "", f"grammar {name};", ""]

    def rule(state: int) -> str:
        alternatives = [f"{word} <s{dst}>" if automaton.outgoing(dst) else word for word, dst in automaton.outgoing(state)]
        if state in automaton.finals and state != 0:
            alternatives.insert(0, "<NULL>")
        return " | ".join(alternatives)

    lines.append(f"public <command> = {rule(0)};")
    for state in range(1, automaton.n_states):
        if automaton.outgoing(state):
            lines.append(f"<s{state}> = {rule(state)};")
    return "\n".join(lines) + "\n"


def command_automaton() -> Automaton:
    return build_automaton(command_phrases())


def command_jsgf() -> str:
    """The JSGF grammar of everything the robot understands (see module docstring)."""
    return to_jsgf(command_automaton())


def sentence_meanings() -> dict[str, frozenset[tuple[tuple[str, str], ...]]]:
    """What each grammar sentence asks for: sentence -> the task specs it can mean.

    A spec is a sorted tuple of (key, value) pairs, e.g. (("object", "red cube"),
    ("task", "pick")). Most sentences have one meaning; a few phrasings belong to
    two task kinds ("set the X onto the Y" is place or stack) and keep both. Stop
    and resume phrases mean {"task": "stop"} and {"task": "resume"}. Two sentences
    ask for the same command when their meanings intersect.
    """
    slots = {"object": vocabulary.OBJECTS, "target": vocabulary.OBJECTS + vocabulary.PLATES,
             "direction": vocabulary.DIRECTIONS}
    meanings: dict[str, set] = {}
    for templates in (vocabulary.TRAIN_TEMPLATES, vocabulary.PARAPHRASE_TEMPLATES):
        for kind, phrasings in templates.items():
            for template in phrasings:
                keys = [k for k in slots if "{" + k + "}" in template]
                for values in itertools.product(*(slots[k] for k in keys)):
                    spec = dict(zip(keys, values), task=kind)
                    meanings.setdefault(vocabulary.fill(template, spec), set()).add(tuple(sorted(spec.items())))
    for phrase in vocabulary.STOP_PHRASES:
        meanings[phrase] = {(("task", "stop"),)}
    for phrase in vocabulary.RESUME_PHRASES:
        meanings[phrase] = {(("task", "resume"),)}
    return {sentence: frozenset(specs) for sentence, specs in meanings.items()}
