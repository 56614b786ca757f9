"""The words of vla_ros: objects, places, task phrasings and stop words.

One source for everything that turns language into tasks: the simulator's task
suite samples instructions from these templates, the policy is trained on the
TRAIN phrasings and evaluated on the PARAPHRASE ones, and the speech grammar is
generated from all of them, so a word the robot can act on is a word it can hear.
"""
from __future__ import annotations

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
