# SPDX-License-Identifier: GPL-3.0-or-later
"""Which vision question, if any, the wearer just asked (from Whisper's transcript).

Whisper writes the same request many ways ("What am I looking at?", "what'm I
looking at", "What do you see", "Read this.", "What does that sign say?"), so the
matcher normalises the text (lower case, apostrophes and punctuation dropped,
"photograph"/"pic" folded into "photo") and looks for a set of patterns anywhere
in it. Questions that merely mention seeing ("do you see my point?") stay with the
LLM: the patterns ask for the view itself.
"""

from __future__ import annotations

import re
from typing import Literal

VisionIntent = Literal["describe", "read", "photo"]

_PHOTO = re.compile(
    r"\b(take|snap|shoot|capture|grab|make)\s+(a|an|the|another|one|me\s+a)?\s*(quick\s+)?"
    r"(photo|picture|shot|snapshot|image)\b"
    r"|\b(photo|picture|snapshot)\s+(this|that|it)\b"
    r"|\bsay\s+cheese\b"
)
_READ = re.compile(
    # Not "read me a story" nor "read the news": those go to the LLM.
    r"\bread\s+(this|that|it|what|out|aloud)\b"
    r"|\bread\s+(the|this|that)\s+(sign|text|label|menu|page|board|screen|note|notice|poster|words?|writing)\b"
    r"|^\s*read\s*$"
    r"|\bwhat\s+(does|do|did)\s+(it|this|that|the\s+\w+|this\s+\w+|that\s+\w+)\s+(say|read)s?\b"
    r"|\bwhats?\s+(written|it\s+say|this\s+say|that\s+say)\b"
    r"|\bwhat\s+is\s+written\b"
    r"|\bwhat\s+(does|do)\s+(it|this|that)\s+(text|sign)\s+say\b"
    r"|\bcan\s+you\s+read\b"
)
_DESCRIBE = re.compile(
    r"\bwhat\s+(am\s+i|im|are\s+we|were|i\s+am)\s+(looking|staring)\s+at\b"
    r"|\bwhat\s+(do|can)\s+you\s+see\b"
    r"|\bwhat\s+(is|s|are)\s+(in\s+front\s+of|ahead\s+of|around)\s+(me|us)\b"
    r"|\bwhats\s+(in\s+front\s+of|ahead\s+of|around)\s+(me|us)\b"
    r"|\bwhat\s+(is|s)\s+(this|that)\b\s*$"
    r"|\bwhats\s+(this|that)\s*$"
    r"|\bdescribe\s+(what|the\s+(scene|view)|my\s+surroundings|this|that|it)\b"
    r"|\bwhat\s+(is|s)\s+(here|there)\s*$"
    r"|\b(look|looking)\s+at\s+(this|that)\b.*\bwhat\b"
    r"|\btell\s+me\s+what\s+you\s+see\b"
    r"|\bwhat\s+(objects?|things)\s+(do|can)\s+you\s+see\b"
)


def normalise(transcript: str) -> str:
    """Lower case, apostrophes dropped ("what's" -> "whats", "what'm" -> "whatm"), punctuation to spaces."""
    t = transcript.lower().replace("\u2019", "'")
    t = re.sub(r"'", "", t)
    t = re.sub(r"[^a-z0-9]+", " ", t)
    t = re.sub(r"\bwhatm\b", "what am", t)
    t = re.sub(r"\b(photograph|pic|pics|foto)\b", "photo", t)
    return re.sub(r"\s+", " ", t).strip()


def match_vision_intent(transcript: str) -> VisionIntent | None:
    """"describe" | "read" | "photo" | None for a transcript (None: not a vision request)."""
    t = normalise(transcript)
    if not t:
        return None
    # Photo first: "take a picture of what I'm looking at" is a photo request.
    if _PHOTO.search(t):
        return "photo"
    if _READ.search(t):
        return "read"
    if _DESCRIBE.search(t):
        return "describe"
    return None
