"""The words of vla_ros: objects, places, task phrasings and stop words.

One source for everything that turns language into tasks: the simulator's task
suite samples instructions from these templates, the policy is trained on the
TRAIN phrasings and evaluated on the PARAPHRASE ones, and the speech grammar is
generated from all of them, so a word the robot can act on is a word it can hear.
"""
from __future__ import annotations

import functools
import itertools
import re

OBJECT_COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow")
OBJECT_SHAPES: tuple[str, ...] = ("cube", "cylinder")
PLATE_COLOURS: tuple[str, ...] = ("white", "black")
DIRECTIONS: tuple[str, ...] = ("left", "right", "forward")

OBJECTS: tuple[str, ...] = tuple(f"{c} {s}" for c, s in itertools.product(OBJECT_COLOURS, OBJECT_SHAPES))
PLATES: tuple[str, ...] = tuple(f"{c} plate" for c in PLATE_COLOURS)

TASK_KINDS: tuple[str, ...] = ("pick", "place", "push", "stack", "home", "open_gripper", "close_gripper")

# Placeholders: {object}, {target} (a plate for place, an object for stack), {direction}.
# TRAIN phrasings are what demonstrations are labelled with; PARAPHRASE phrasings
# (synonyms such as "grab", "lift", "set ... onto") are held out to test language
# generalisation.
TRAIN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "pick": ("pick up the {object}", "pick the {object} up"),
    "place": ("place the {object} on the {target}", "put the {object} on the {target}"),
    "push": ("push the {object} {direction}", "push the {object} to the {direction}"),
    "stack": ("stack the {object} on the {target}", "put the {object} on top of the {target}"),
    "home": ("go home", "return to the home position"),
    "open_gripper": ("open the gripper", "open your hand"),
    "close_gripper": ("close the gripper", "close your hand"),
}
PARAPHRASE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "pick": ("grab the {object}", "lift the {object}", "raise the {object}"),
    "place": ("set the {object} onto the {target}", "move the {object} to the {target}"),
    "push": ("slide the {object} {direction}", "nudge the {object} to the {direction}"),
    "stack": ("set the {object} onto the {target}", "place the {object} on top of the {target}"),
    "home": ("go back to the home position", "move to your home position"),
    "open_gripper": ("release the gripper", "open the hand"),
    "close_gripper": ("shut the gripper", "close the hand"),
}

# Any of these within an instruction triggers the emergency stop, bypassing the policy.
STOP_PHRASES: tuple[str, ...] = ("stop", "halt", "freeze", "emergency stop", "abort")
# Words that may follow a stop; they never reset the e-stop by themselves.
RESUME_PHRASES: tuple[str, ...] = ("resume", "continue")

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(template: str, spec: dict) -> str:
    """Fill a template's placeholders from a task spec ({"object": ..., "target": ..., "direction": ...})."""
    def value(match: re.Match) -> str:
        key = match.group(1)
        if key not in spec:
            raise KeyError(f"template {template!r} needs {key!r}, task spec has {sorted(spec)}")
        return str(spec[key])

    return _PLACEHOLDER.sub(value, template)


def all_phrasings() -> list[str]:
    """Every instruction the task suite can produce, train and paraphrase, fully expanded."""
    slots = {"object": OBJECTS, "target": OBJECTS + PLATES, "direction": DIRECTIONS}
    phrasings = []
    for templates in itertools.chain(TRAIN_TEMPLATES.values(), PARAPHRASE_TEMPLATES.values()):
        for template in templates:
            keys = _PLACEHOLDER.findall(template)
            for values in itertools.product(*(slots[k] for k in keys)):
                phrasings.append(fill(template, dict(zip(keys, values))))
    return sorted(set(phrasings))


def words() -> list[str]:
    """Every word the robot understands: the task phrasings' words plus stop and resume words."""
    text = " ".join(all_phrasings() + list(STOP_PHRASES) + list(RESUME_PHRASES))
    return sorted(set(text.split()))


@functools.cache
def _template_patterns() -> tuple[tuple[str, re.Pattern], ...]:
    """(task kind, pattern) of every TRAIN and PARAPHRASE template, slots as named groups."""
    slots = {"object": OBJECTS, "target": OBJECTS + PLATES, "direction": DIRECTIONS}
    patterns = []
    for templates in (TRAIN_TEMPLATES, PARAPHRASE_TEMPLATES):
        for kind, phrasings in templates.items():
            for template in phrasings:
                parts = _PLACEHOLDER.split(template)  # literal, slot, literal, slot, ...
                regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>{'|'.join(slots[part])})"
                                for i, part in enumerate(parts))
                patterns.append((kind, re.compile(regex)))
    return tuple(patterns)


def parse_instruction(text: str) -> dict | None:
    """The task spec an instruction asks for (as in sim/tasks.py), or None.

    The inverse of filling the templates: the text, in intake's normal form
    (case, punctuation and spacing do not matter), must be a TRAIN or PARAPHRASE
    phrasing with known slot values. Place and stack differ only in their
    target ("set the X onto the Y" is a phrasing of both), so a plate makes it a
    place and an object a stack, whichever phrasing was used. None for text
    that matches no phrasing, asks for the impossible (an object on itself) or
    could mean two different tasks. Push specs leave the distance to its default.
    """
    from vla_ros.intake.text import normalise  # intake builds on this module

    normal = normalise(text)
    meanings = set()
    for kind, pattern in _template_patterns():
        match = pattern.fullmatch(normal)
        if match is None:
            continue
        spec = {"task": kind, **match.groupdict()}
        if kind in ("place", "stack"):
            spec["task"] = "place" if spec["target"] in PLATES else "stack"
            if spec["object"] == spec["target"]:
                continue
        meanings.add(tuple(sorted(spec.items())))
    return dict(meanings.pop()) if len(meanings) == 1 else None
