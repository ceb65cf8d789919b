# SPDX-License-Identifier: GPL-3.0-or-later
"""The wearer's own words said back to them, and the names of their timers (pure text)."""

from __future__ import annotations

import re


def flip_person(text: str) -> str:
    """The wearer's words said back to them: "my car is on level 3" -> "your car is on level 3"."""
    swaps = {"i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself", "i'm": "you're",
             "am": "are", "i've": "you've", "i'll": "you'll", "i'd": "you'd", "we": "you", "our": "your"}
    return re.sub(r"[A-Za-z']+", lambda m: swaps.get(m.group(0).lower(), m.group(0)), text)


def lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != "I " else text


def timer_name(kind: str, label: str) -> str:
    return f"{label} timer" if kind == "timer" else f"reminder to {flip_person(label)}"
