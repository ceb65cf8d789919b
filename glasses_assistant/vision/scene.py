"""Detections -> a compact fact string for the LLM, and a plain sentence when there is no LLM.

The LLM (a small one on the device) phrases the spoken answer better from short
facts than from boxes: "a dog (ahead, large), a bicycle (left), a car (right, far)".
Positions come from the box centre (left / ahead / right thirds of the frame), size
from the share of the frame the box covers (large = close, small = far away).
"""

from __future__ import annotations

from collections.abc import Sequence

from .detector import Detection

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
            d = Detection(d.label, d.score, (x1 / width, y1 / height, x2 / width, y2 / height), d.class_id)
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


def describe_scene(detections: Sequence[Detection], width: int = 0, height: int = 0, *, max_groups: int = 6) -> str:
    """A compact fact string, e.g. "a dog (ahead, large), 2 people (left, ahead), a car (right, far)".

    ``width``/``height`` are the frame's size, needed only if the boxes are in pixels.
    Returns "nothing I recognise" when there are no detections.
    """
    parts = []
    for label, dets in _groups(detections, width, height, max_groups):
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


def spoken_scene(detections: Sequence[Detection], width: int = 0, height: int = 0, *, max_groups: int = 4) -> str:
    """A plain spoken answer without the LLM.

    For example "I see a dog ahead of you, a bicycle on your left and a car on your right."

    Used when no LLM is loaded, when the LLM's answer leaves out every object, and in tests.
    """
    groups = _groups(detections, width, height, max_groups)
    if not groups:
        return "I don't see anything I recognise."
    where_words = {"left": "on your left", "right": "on your right", "ahead": "ahead of you"}
    phrases = []
    for label, dets in groups:
        n = len(dets)
        what = article(name(label)) if n == 1 else f"{_NUMBERS[n] if n < len(_NUMBERS) else n} {plural(label, n)}"
        places = []
        for d in sorted(dets, key=lambda d: -d.area):
            w = where_words[position(d)]
            if w not in places:
                places.append(w)
        phrases.append(f"{what} {' and '.join(places[:2])}")
    body = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return f"I see {body}."


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
