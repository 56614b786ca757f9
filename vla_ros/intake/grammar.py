"""The speech grammar, generated from the task vocabulary (never kept by hand).

Every phrasing of the vocabulary (`vocabulary.all_phrasings()`) that asks for
a task the robot can do, every stop phrase and every resume phrase is a
sentence of the grammar, and nothing else is. "A task the robot can do" is
decided by `vocabulary.parse_instruction`, the same reader the simulator and
the demo use: the template cross-product also yields sentences such as "stack
the red cube on the red cube", which no one can carry out and which would only
be something more for the recogniser to confuse a real command with. The sentences are compiled into the minimal deterministic automaton
that accepts exactly them (shared prefixes and shared suffixes: "... the red
cube" is one path whatever came before), which keeps the recogniser's search
small: a flat list of the ~700 sentences decodes about ten times slower.

The automaton is written out as JSGF (one rule per state, for people and tools
that read grammars) and handed to the recogniser as a finite-state grammar.
"""
from __future__ import annotations

from dataclasses import dataclass

from vla_ros import vocabulary

GRAMMAR_NAME = "vla_ros_commands"


def command_phrases() -> list[str]:
    """Every sentence the recogniser may return: task phrasings that parse, stop and resume phrases."""
    tasks = [p for p in vocabulary.all_phrasings() if vocabulary.parse_instruction(p) is not None]
    return sorted(set(tasks + list(vocabulary.STOP_PHRASES) + list(vocabulary.RESUME_PHRASES)))


def command_of(sentence: str) -> dict | None:
    """The command a sentence asks for: its task spec (vocabulary.parse_instruction), or
    {"task": "stop"} / {"task": "resume"}; None for anything else.

    Two sentences give the robot the same command when these are equal: "stack the
    red cube on the blue cube" and "put the red cube on the blue cube" are one
    command, as the simulator and the policy read them.
    """
    if sentence in vocabulary.STOP_PHRASES:
        return {"task": "stop"}
    if sentence in vocabulary.RESUME_PHRASES:
        return {"task": "resume"}
    return vocabulary.parse_instruction(sentence)


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
