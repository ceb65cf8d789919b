# SPDX-License-Identifier: GPL-3.0-or-later
"""The cheap side of acting on an intent: a word test on the transcript, and deterministic arguments.

:func:`candidates` says which tools a transcript may be asking for (regular expressions, no
model), so an ordinary question costs nothing extra. :func:`parse_args` reads the arguments a
rule can read reliably (durations, the text after "remember that", a persona's name, a volume
level); where it finds one, it wins over the small LLM's (which may invent numbers).
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..translate.languages import NAMES
from ..vision.intents import match_vision_intent

_UNITS = {"second": 1, "sec": 1, "minute": 60, "min": 60, "hour": 3600, "hr": 3600, "day": 86400}
_NUMBERS = {
    "zero": 0, "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "ninety": 90, "a couple of": 2, "a few": 3,
}
_NUM = r"(\d+(?:\.\d+)?|" + "|".join(sorted((re.escape(k) for k in _NUMBERS), key=len, reverse=True)) + r")"
_DURATION = re.compile(
    rf"\b(?:{_NUM}(?:[\s-]+(one|two|three|four|five|six|seven|eight|nine))?\s*"
    rf"(?:(and a half)\s+)?(second|sec|minute|min|hour|hr|day)s?\b(?:\s+and\s+a\s+half\b)?)"
    rf"|\b(half an? (?:hour|minute))\b",
    re.IGNORECASE,
)


def _number(word: str) -> float:
    word = word.lower()
    return float(word) if word[0].isdigit() else float(_NUMBERS[word])


def parse_duration(text: str) -> float | None:
    """Seconds in ``text`` ("five minutes", "1.5 hours", "an hour and a half", "2 min 30 s"); None if none."""
    total, found = 0.0, False
    for m in _DURATION.finditer(text):
        found = True
        if m.group(5):  # "half an hour"
            total += 1800 if "hour" in m.group(5).lower() else 30
            continue
        n = _number(m.group(1))
        if m.group(2):  # "twenty five"
            n += _NUMBERS[m.group(2).lower()]
        unit = _UNITS[m.group(4).lower()]
        if m.group(3) or m.group(0).lower().rstrip().endswith("and a half"):
            n += 0.5
        total += n * unit
    return total if found else None


def say_duration(seconds: float) -> str:
    """300 -> "5 minute", for "your 5 minute timer"; 90 -> "1 minute 30 second"."""
    if not _speakable(seconds):
        return "very long"
    seconds = int(round(seconds))
    parts = []
    for name, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size} {name}")
            seconds %= size
    return " ".join(parts) or "0 second"


def _speakable(seconds: float) -> bool:
    """A span worth reading out (NaN, infinity and 400-digit numbers are not: round() fails on them)."""
    try:
        return math.isfinite(seconds) and 0 <= seconds < 1e12
    except (TypeError, OverflowError):
        return False


def say_span(seconds: float) -> str:
    """300 -> "5 minutes", 3 days -> "3 days" (for sentences)."""
    if not _speakable(seconds):
        return "a very long time"
    seconds = int(round(seconds))
    if seconds >= 86400 and seconds % 86400 == 0:
        n = seconds // 86400
        return f"{n} day{'s' * (n != 1)}"
    parts = []
    for name, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size:
            n = seconds // size
            parts.append(f"{n} {name}{'s' * (n != 1)}")
            seconds %= size
    return " and ".join(parts) or "0 seconds"


# Patterns over the lower-case transcript; order is the order of preference.
_GATE: list[tuple[str, re.Pattern[str]]] = [
    ("cancel_timer", re.compile(r"\b(cancel|stop|delete|remove|clear)\b.*\b(timers?|reminders?|alarms?)\b")),
    ("list_timers", re.compile(r"\b(what|which|list|any|how many|how long)\b.*\b(timers|reminders|left on)\b"
                               r"|\btimers?\b.*\b(left|running|remaining)\b")),
    ("set_reminder", re.compile(r"\bremind me\b|\b(set|add|create) (a |an )?reminder\b")),
    ("set_timer", re.compile(r"\btimer\b|\bcount ?down\b|\balarm\b.*\b(in|for)\b")),
    ("forget", re.compile(r"\bforget\b|\b(delete|erase|remove)\b.*\b(memor(y|ies)|that|last)\b")),
    ("list_memories", re.compile(r"\bwhat (do|did) you (remember|know about me)\b|\blist (my |all |the )?memories\b"
                                 r"|\bwhat have you (remembered|saved)\b|\bread (me )?my memories\b")),
    ("remember", re.compile(r"^\W*(please |ok(ay)? |hey )?(remember|note|memori[sz]e)\b"
                            r"(?! (when|where|what|who|how|if))"
                            r"|\bdon'?t (let me )?forget (that|to)\b|\bmake a note\b|\bkeep in mind\b")),
    ("recall", re.compile(r"\bwhere (did i|is my|are my|'?s my|was my)\b|\bwhat did i (tell|say|ask)\b"
                          r"|\bdo you remember\b|\bwho did i (meet|see|talk)\b|\bwhat('s| is| was) (my|the name)\b"
                          r"|\bwhere('d| did) i (park|put|leave)\b|\bremind me (what|where|who)\b")),
    # The clock, not the calendar: "what day comes after Friday?" is a question for the chat model.
    ("time", re.compile(r"^(?!.*\b(after|before|comes|if|monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b)"
                        r"(?:.*\bwhat('?s| is)? (the )?(time|date|day)\b|.*\bwhat time\b|.*\bwhat day\b"
                        r"|.*\btoday'?s date\b|.*\bwhat (year|month) is it\b"
                        r"|.*\b(tell me|give me) the (time|date)\b)")),
    # The glasses' own battery; "how do I save battery on my phone?" is how-to, for the chat model.
    ("device_status", re.compile(r"^(?!.*\b(phone|laptop|computer|car|tablet|watch|how do|how can|how to)\b)"
                                 r"(?:.*\bbattery\b|.*\bcharg(e|ed|ing)\b|.*\bhow hot\b|.*\btemperature of (the|my) "
                                 r"glasses\b|.*\bdevice status\b|.*\bstatus of (the|my) (glasses|device)\b"
                                 r"|.*\bpower left\b)")),
    ("volume", re.compile(r"\bvolume\b|\b(louder|quieter|softer)\b|\bspeak up\b|\bturn (it |yourself )?(up|down)\b"
                          r"|\bmute\b|\btoo (loud|quiet)\b")),
    ("switch_persona", re.compile(r"\bpersona\b|\bswitch to\b|\bbe my\b|\bchange (your )?(voice|personality)\b"
                                  r"|\btalk like\b|\bbecome (the|my|a)\b|\bturn into\b")),
    ("start_translation", re.compile(r"\btranslat|\binterpret\b|\binterpreter\b")),
    # Spelling is the transcript's business, not the model's: a language model sees word pieces, not letters.
    ("spell", re.compile(r"\bhow (do|would|should) (you|i|we|one) spell\b|^\W*spell\b|\bhow is .+ spelled\b"
                         r"|\bwhat is the spelling of\b|\bcan you spell\b")),
]


def candidates(text: str, persona_names: tuple[str, ...] = ()) -> list[str]:
    """The tools ``text`` may ask for, most likely first (empty: an ordinary question)."""
    t = text.lower().strip()
    found = [name for name, pattern in _GATE if pattern.search(t)]
    if match_vision_intent(text) == "photo":
        found.insert(0, "take_photo")
    if "switch_persona" not in found and any(re.search(rf"\b(to|be|as) (the )?{re.escape(n)}\b", t)
                                             for n in persona_names):
        found.append("switch_persona")
    if "list_memories" in found and "recall" in found:
        found.remove("recall")  # "what do you remember?"
    if "cancel_timer" in found and "set_timer" in found:
        found.remove("set_timer")  # "cancel the tea timer"
    if "remember" in found and "recall" in found:
        # "remember where I parked?" asks; "remember that my car is..." tells.
        found.remove("recall" if re.search(r"^\W*(please )?remember (that|this)\b", t) else "remember")
    return found


def _after(pattern: str, text: str) -> str:
    m = re.search(pattern, text, re.IGNORECASE)
    return m.group(1).strip(" .,!?") if m else ""


def _label(text: str) -> str:
    m = re.search(r"\b(?:an?|the|my)\s+(?!\d)([a-z]+)\s+timer\b", text.lower())
    if m and m.group(1) not in {"new", "one", "quick", "short", "long", "minute", "second", "hour"}:
        return m.group(1)
    return _after(r"\btimer\b.*?\bfor (?:the |my )?([a-z]+(?: [a-z]+)?)\s*[.!?]?$", text) if not parse_duration(
        _after(r"\btimer\b.*?\bfor (.*)$", text) or "") else ""


# The language names translation knows (one list: a name the tool reads is one start_translation takes).
_LANGS = frozenset(n.lower() for n in NAMES.values())


def parse_args(tool: str, text: str, persona_names: tuple[str, ...] = ()) -> dict[str, Any]:
    """The arguments of ``tool`` a rule reads from ``text`` (only the ones it is sure of)."""
    t = text.strip()
    low = t.lower()
    args: dict[str, Any] = {}
    if tool == "set_timer":
        seconds = parse_duration(t)
        if seconds is not None:
            args["seconds"] = seconds
        label = _label(t)
        if label:
            args["label"] = label
    elif tool == "set_reminder":
        m = re.search(r"\bin\s+(.+?)(?:\s+to\b|$)", low)
        seconds = parse_duration(m.group(1)) if m else None
        if seconds is not None:
            args["seconds"] = seconds
        at = re.search(r"\bat (\d{1,2})(?:[:.](\d{2}))?\s*(a\.?m\.?|p\.?m\.?)?", low)
        if at:
            hour, minute = int(at.group(1)), int(at.group(2) or 0)
            if at.group(3) and at.group(3)[0] == "p" and hour < 12:
                hour += 12
            if at.group(3) and at.group(3)[0] == "a" and hour == 12:
                hour = 0
            args["at"] = f"{hour:02d}:{minute:02d}"
        what = _after(r"\bremind me (?:to |that |about )?(.+?)(?:\s+(?:in|at|after)\s+[\w.:]+(?:\s+\w+)?)?[.!?]?$", t)
        if what:
            args["text"] = what
    elif tool == "remember":
        what = _after(r"\b(?:remember|note|memori[sz]e|don'?t forget|keep in mind)"
                      r"(?: (?:that|this|to))?[:,]?\s+(.+)$", t)
        if what:
            args["text"] = what
    elif tool == "cancel_timer":
        m = re.search(r"\b(?:the|my)\s+([a-z]+)\s+(?:timer|reminder|alarm)\b", low)
        if m and m.group(1) not in {"last", "current", "first", "only"}:
            args["label"] = m.group(1)
    elif tool == "recall":
        args["query"] = t.strip(" ?.!")
    elif tool == "forget":
        if re.search(r"\b(forget|delete|erase) (that|it|the last( one| thing| memory)?|what i just said)\b", low):
            args["which"] = "last"
        elif m := re.search(r"\b(?:everything|all|anything|what i (?:told|said))(?: (?:you|that))? (?:about|on) (.+)$",
                            low):
            args["which"], args["query"] = "query", m.group(1).strip(" .!?")
        elif re.search(r"\b(forget|delete|erase) (everything|all( of)?( my)? memories|all)\b", low):
            args["which"] = "all"
        elif m := re.search(r"\bforget (?:about )?(?:my |the )?(.+)$", low):
            args["which"], args["query"] = "query", m.group(1).strip(" .!?")
    elif tool == "volume":
        m = re.search(r"\b(\d{1,3})\s*(%|percent)?", low)
        if m:
            args["change"], args["level"] = "set", int(m.group(1))
        elif re.search(r"\b(mute|silent)\b", low):
            args["change"], args["level"] = "set", 0
        elif re.search(r"\b(up|louder|speak up|too quiet|increase|raise)\b", low):
            args["change"] = "up"
        elif re.search(r"\b(down|quieter|softer|too loud|decrease|lower)\b", low):
            args["change"] = "down"
        elif re.search(r"\b(max(imum)?|full)\b", low):
            args["change"], args["level"] = "set", 100
    elif tool == "switch_persona":
        for name in persona_names:
            if re.search(rf"\b{re.escape(name.lower())}\b", low):
                args["name"] = name
                break
    elif tool == "start_translation":
        langs = [lang for lang in re.findall(r"[a-z]+", low) if lang in _LANGS]
        src = re.search(r"\bfrom (\w+)", low)
        dst = re.search(r"\b(?:to|into) (\w+)", low)
        if src and src.group(1) in _LANGS:
            args["source"] = src.group(1)
        if dst and dst.group(1) in _LANGS:
            args["target"] = dst.group(1)
        if not args and len(langs) == 1:
            args["target"] = langs[0]
    elif tool == "spell":
        m = (re.search(r"\bspell(?:ing)?(?: of)?(?: the word)?\s+[\"'“]?([A-Za-z][A-Za-z'\-]*)", t, re.IGNORECASE)
             or re.search(r"\bhow is (?:the word )?[\"'“]?([A-Za-z][A-Za-z'\-]*)[\"'”]? spelled\b", t, re.IGNORECASE))
        if m and m.group(1).lower() not in {"it", "that", "this", "a", "the"}:
            args["word"] = m.group(1).strip("'-")
    elif tool == "time":
        args["what"] = "date" if re.search(r"\b(date|day|year|month)\b", low) else "time"
    return args
