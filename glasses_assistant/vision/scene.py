# SPDX-License-Identifier: GPL-3.0-or-later
"""Detections -> a compact fact string for the LLM, and a plain sentence when there is no LLM.

The LLM (a small one on the device) phrases the spoken answer better from short
facts than from boxes: "a dog (ahead, large), a bicycle (left), a car (right, far)".
Positions come from the box centre (left / ahead / right thirds of the frame), size
from the share of the frame the box covers (large = close, small = far away).

Honesty first: only detections the detector is sure of (its calibrated band, see
:mod:`.calibration`) are said as fact or given to the LLM; fainter ones are said as a
guess ("There might also be ..."); and a reply that names an object nobody detected
is refused in favour of the plain sentence (:func:`names_only`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from .detector import Detection
from .labels import COCO_LABELS

_PLURAL = {"person": "people", "mouse": "mice", "knife": "knives", "bus": "buses", "couch": "couches",
           "sandwich": "sandwiches", "skis": "pairs of skis", "sheep": "sheep", "scissors": "pairs of scissors",
           "hair drier": "hair driers", "wine glass": "wine glasses", "sports ball": "balls", "tv": "TVs",
           "toothbrush": "toothbrushes", "bench": "benches", "glass": "glasses"}
_NAMES = {"tv": "TV", "sports ball": "ball", "dining table": "table", "cell phone": "phone"}
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
LARGE = 0.20  # of the frame's area: close to the wearer
SMALL = 0.015  # far away (or a small thing)


def name(label: str) -> str:
    """The spoken name of a COCO label ("cell phone" -> "phone")."""
    return _NAMES.get(label, label)


def plural(label: str, n: int) -> str:
    if n == 1:
        return name(label)
    if label in _PLURAL:
        return _PLURAL[label]
    word = name(label)
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


def article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def position(det: Detection) -> str:
    cx, _ = det.center
    return "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "ahead"


def size(det: Detection) -> str:
    return "large" if det.area >= LARGE else "far" if det.area <= SMALL else ""


def _normalised(detections: Sequence[Detection], width: int, height: int) -> list[Detection]:
    """Accept pixel boxes too: anything beyond 1.0 is divided by the frame's size."""
    out = []
    for d in detections:
        if max(d.box_xyxy) > 1.0 and width > 0 and height > 0:
            x1, y1, x2, y2 = d.box_xyxy
            d = replace(d, box_xyxy=(x1 / width, y1 / height, x2 / width, y2 / height))
        out.append(d)
    return out


def _groups(
    detections: Sequence[Detection], width: int, height: int, max_groups: int
) -> list[tuple[str, list[Detection]]]:
    groups: dict[str, list[Detection]] = {}
    for d in _normalised(detections, width, height):
        groups.setdefault(d.label, []).append(d)
    # Most prominent first: the biggest, surest object is what the wearer is looking at.
    ranked = sorted(groups.items(), key=lambda kv: -max(d.area * d.score for d in kv[1]))
    return ranked[:max_groups]


def sure_of(detections: Sequence[Detection]) -> list[Detection]:
    """The detections said as fact (their score reached the detector's calibrated ``sure``)."""
    return [d for d in detections if d.sure]


def guesses_of(detections: Sequence[Detection]) -> list[Detection]:
    """The detections only good for a guess, less any label that is also there for sure
    (a second, fainter "person" is not news when one person is certain)."""
    certain = {d.label for d in detections if d.sure}
    return [d for d in detections if not d.sure and d.label not in certain]


def describe_scene(detections: Sequence[Detection], width: int = 0, height: int = 0, *, max_groups: int = 6) -> str:
    """A compact fact string, e.g. "a dog (ahead, large), 2 people (left, ahead), a car (right, far)".

    Only the detections that are sure: these are the facts the LLM phrases (a guess never
    reaches it, so it cannot turn one into a statement). ``width``/``height`` are the
    frame's size, needed only if the boxes are in pixels. Returns "nothing I recognise"
    when nothing is sure.
    """
    parts = []
    for label, dets in _groups(sure_of(detections), width, height, max_groups):
        where = []
        for d in sorted(dets, key=lambda d: d.center[0]):
            p = position(d)
            if p not in where:
                where.append(p)
        if len(dets) == 1:
            attrs = [where[0]] + ([size(dets[0])] if size(dets[0]) else [])
            parts.append(f"{article(name(label))} ({', '.join(attrs)})")
        else:
            parts.append(f"{len(dets)} {plural(label, len(dets))} ({', '.join(where)})")
    return ", ".join(parts) if parts else "nothing I recognise"


_WHERE_WORDS = {"left": "on your left", "right": "on your right", "ahead": "ahead of you"}


def _spoken_list(groups: list[tuple[str, list[Detection]]]) -> str:
    """ "a dog ahead of you, two people on your left and a car on your right" """
    phrases = []
    for label, dets in groups:
        n = len(dets)
        what = article(name(label)) if n == 1 else f"{_NUMBERS[n] if n < len(_NUMBERS) else n} {plural(label, n)}"
        places = []
        for d in sorted(dets, key=lambda d: -d.area):
            w = _WHERE_WORDS[position(d)]
            if w not in places:
                places.append(w)
        phrases.append(f"{what} {' and '.join(places[:2])}")
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


SPOKEN_GROUPS = 4  # objects said as fact: more is a list, not an answer
GUESS_GROUPS = 2


def spoken_labels(detections: Sequence[Detection], width: int = 0, height: int = 0) -> tuple[list[str], list[str]]:
    """The objects :func:`spoken_scene` says: (as fact, as a guess), most prominent first.

    What the quality benchmark scores, so that it scores exactly what the wearer hears.
    """
    sure = _groups(sure_of(detections), width, height, SPOKEN_GROUPS)
    guesses = _groups(guesses_of(detections), width, height, GUESS_GROUPS)
    return [lb for lb, _ in sure], [lb for lb, _ in guesses]


def guess_sentence(detections: Sequence[Detection], width: int = 0, height: int = 0, *,
                   max_groups: int = GUESS_GROUPS) -> str:
    """The guesses as a sentence said after the facts ("There might also be a cup on your left."),
    or "" when there are none, or when nothing is sure (then :func:`spoken_scene` words it)."""
    if not sure_of(detections):
        return ""
    groups = _groups(guesses_of(detections), width, height, max_groups)
    return f"There might also be {_spoken_list(groups)}." if groups else ""


def spoken_scene(detections: Sequence[Detection], width: int = 0, height: int = 0, *,
                 max_groups: int = SPOKEN_GROUPS) -> str:
    """A plain spoken answer without the LLM.

    For example "I see a dog ahead of you, a bicycle on your left and a car on your right."
    Objects that are only a guess are said as one ("There might also be a cup on your
    left."); with only guesses the answer says first that it is not sure; with nothing,
    it says so rather than naming the least unlikely thing.

    Used when no LLM is loaded, when the LLM's answer is not faithful to the detections,
    and in tests.
    """
    sure = _groups(sure_of(detections), width, height, max_groups)
    if sure:
        extra = guess_sentence(detections, width, height)
        return f"I see {_spoken_list(sure)}." + (f" {extra}" if extra else "")
    guesses = _groups(guesses_of(detections), width, height, GUESS_GROUPS)
    if guesses:
        return f"I can't tell for sure. It might be {_spoken_list(guesses)}."
    return NOTHING_RECOGNISED


NOTHING_RECOGNISED = "I don't see anything I recognise."

# Words a reply may use for a COCO object besides its label, name and plural: a detected
# person may be "a man"; an undetected one must not be.
_ALIASES = {"person": ("man", "men", "woman", "women", "boy", "girl", "child", "children", "someone", "somebody"),
            "dining table": ("tables",), "cell phone": ("phones", "mobile"), "tv": ("television",),
            "motorcycle": ("motorbike",), "bicycle": ("bike", "bikes"), "airplane": ("plane", "aeroplane"),
            "couch": ("sofa",), "potted plant": ("plant", "plants")}


def _words_for(label: str) -> set[str]:
    return {label, name(label).lower(), plural(label, 2).lower(), *_ALIASES.get(label, ())}


def _says(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def mentions_any(text: str, labels: Sequence[str]) -> bool:
    """Whether a reply names at least one of the detected objects (else the plain answer is said)."""
    low = text.lower()
    return any(_says(low, w) for lb in labels for w in _words_for(lb))


def invented_objects(text: str, labels: Sequence[str]) -> list[str]:
    """The COCO objects a reply names that are not in ``labels`` (the detected ones), by spoken name.

    The LLM phrases what the detector found; a small one also invents ("a dog and a
    cat" for a dog alone). Any other COCO object it names, by label, spoken name, plural
    or a common alias, counts. The detected objects' own phrases are taken out first, so
    "teddy bear" does not count as a "bear".
    """
    low = text.lower()
    for lb in sorted(labels, key=len, reverse=True):
        for w in sorted(_words_for(lb), key=len, reverse=True):
            low = re.sub(rf"(?<![\w-]){re.escape(w)}(?![\w-])", " ", low)
    allowed = set(labels)
    return [name(lb).lower() for lb in COCO_LABELS
            if lb not in allowed and any(_says(low, w) for w in _words_for(lb))]


def names_only(text: str, labels: Sequence[str]) -> bool:
    """Whether a reply names no COCO object other than ``labels`` (see :func:`invented_objects`)."""
    return not invented_objects(text, labels)


def describe_prompt(facts: str, question: str = "What am I looking at?") -> str:
    """The user message for the LLM: the camera's facts, then the wearer's question.

    Kept short and explicit for a 135M model: name the objects, use the positions,
    one or two sentences, no guessing beyond the facts.
    """
    return (
        f"The camera on my glasses sees: {facts}.\n"
        f"{question}\n"
        "Answer in one or two short spoken sentences, naming the objects and where they are. "
        "Say only what the camera sees."
    )
