# SPDX-License-Identifier: GPL-3.0-or-later
"""The tools the assistant can call: name, description, JSON schema of the arguments, validation.

The LLM's call is ``{"tool": NAME, "args": {...}}``. :func:`call_schema` is the JSON schema of
every call allowed now (one ``anyOf`` branch per tool, plus ``{"tool": "none"}``); llama.cpp
turns it into a grammar, so even the 135M model can only write a well-formed call. The schema
fixes types and names only; ranges are checked by :func:`validate`, which gives a sentence the
wearer hears ("I can't set a timer for 3 days; the longest is 24 hours.") instead of a call
the grammar would have bent into something else.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from .intents import say_span

MAX_TIMER_S = 86400
MAX_TEXT = 200


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args: dict[str, dict[str, Any]]
    """JSON schema of each argument (all optional in the grammar; validate() says what is missing)."""


def _str(max_len: int = 80) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_len}


TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in [
    ToolSpec("time", "tell the current time or date", {"what": {"enum": ["time", "date"]}}),
    ToolSpec("set_timer", "start a countdown timer", {"seconds": {"type": "integer"}, "label": _str(30)}),
    ToolSpec("set_reminder", "remind the wearer of something later",
             {"text": _str(), "seconds": {"type": "integer"}, "at": _str(5)}),
    ToolSpec("cancel_timer", "cancel a timer or reminder", {"label": _str(30)}),
    ToolSpec("list_timers", "say which timers and reminders are running", {}),
    ToolSpec("device_status", "battery level and temperature of the glasses", {}),
    ToolSpec("take_photo", "take a photo with the glasses' camera", {}),
    ToolSpec("remember", "store a fact the wearer tells you to remember", {"text": _str(MAX_TEXT)}),
    ToolSpec("recall", "look up something the wearer told you earlier", {"query": _str()}),
    ToolSpec("forget", "delete memories: the last one, all, or those about something",
             {"which": {"enum": ["last", "all", "query"]}, "query": _str()}),
    ToolSpec("list_memories", "say what you remember", {}),
    ToolSpec("volume", "change the speaking volume", {"change": {"enum": ["up", "down", "set"]},
                                                      "level": {"type": "integer"}}),
    ToolSpec("switch_persona", "change to another persona (personality and voice)", {"name": _str(30)}),
    ToolSpec("start_translation", "start translating speech between languages",
             {"source": _str(20), "target": _str(20)}),
    ToolSpec("spell", "spell a word letter by letter", {"word": _str(40)}),
]}
NONE = "none"


def call_schema(allowed: list[str], persona_names: tuple[str, ...] = ()) -> dict[str, Any]:
    """JSON schema of a call to one of ``allowed`` (or "none")."""
    branches: list[dict[str, Any]] = []
    for name in allowed:
        props = dict(TOOLS[name].args)
        if name == "switch_persona" and persona_names:
            props = {"name": {"enum": list(persona_names)}}
        branches.append({"type": "object", "properties": {
            "tool": {"const": name}, "args": {"type": "object", "properties": props, "additionalProperties": False},
        }, "required": ["tool", "args"], "additionalProperties": False})
    branches.append({"type": "object", "properties": {"tool": {"const": NONE}, "args": {
        "type": "object", "properties": {}, "additionalProperties": False}},
        "required": ["tool", "args"], "additionalProperties": False})
    return {"anyOf": branches}


def tool_prompt(allowed: list[str]) -> str:
    """The system message for the tool-call step (same with and without the grammar)."""
    lines = [f'- {name}: {TOOLS[name].description}; args: {_arg_names(name)}' for name in allowed]
    return ("You turn the wearer's spoken request into one tool call, written as JSON: "
            '{"tool": NAME, "args": {...}}. Use "none" if no tool fits. Durations are in seconds. Tools:\n'
            + "\n".join(lines) + '\n- none: no tool; args: {}\nExample: "set a timer for two minutes" -> '
            '{"tool": "set_timer", "args": {"seconds": 120}}')


def _arg_names(name: str) -> str:
    args = TOOLS[name].args
    return "{" + ", ".join(f'"{k}"' for k in args) + "}" if args else "{}"


class ToolCallError(ValueError):
    """A call that cannot run; the message is the sentence the wearer hears."""


def parse_call(text: str) -> tuple[str, dict[str, Any]]:
    """``(tool, args)`` from the LLM's text (the first JSON object in it); ToolCallError if none."""
    start = text.find("{")
    if start < 0:
        raise ToolCallError("I didn't understand that as a command.")
    try:
        obj, _end = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError:
        raise ToolCallError("I didn't understand that as a command.") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("tool"), str):
        raise ToolCallError("I didn't understand that as a command.")
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise ToolCallError("I didn't understand that as a command.")
    return obj["tool"], args


def validate(tool: str, args: dict[str, Any], allowed: list[str]) -> dict[str, Any]:
    """Checked and normalised arguments; :class:`ToolCallError` with a spoken reason if they are not usable."""
    if tool not in TOOLS:
        raise ToolCallError(f"I don't have a tool called {tool}.")
    if tool not in allowed:
        raise ToolCallError(f"I can't {TOOLS[tool].description} as this persona.")
    spec = TOOLS[tool]
    out: dict[str, Any] = {}
    for key, value in args.items():
        if key not in spec.args or value is None:
            continue  # an extra key from free generation is ignored, not run
        schema = spec.args[key]
        if schema.get("type") == "integer" or key in ("seconds", "level"):
            if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value):
                value = float(value)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ToolCallError(f"The {key} must be a number.")
            # Written by the LLM (JSON allows NaN, Infinity and 400-digit integers): a number
            # too big for a float is as unusable as infinity, and is said so.
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if math.isnan(number):
                raise ToolCallError(f"The {key} must be a number.")
            if key == "seconds":
                value = number
            elif not math.isfinite(number) or abs(number) > 1e9:
                raise ToolCallError("The volume goes from 0 to 100." if key == "level"
                                    else f"The {key} must be a sensible number.")
            else:
                value = int(round(number))
        elif "enum" in schema:
            if value not in schema["enum"]:
                raise ToolCallError(f"{key} must be one of {', '.join(schema['enum'])}.")
        elif not isinstance(value, str):
            value = str(value)
        if isinstance(value, str):
            value = value.strip()[: schema.get("maxLength", MAX_TEXT)]
            if not value:
                continue
        out[key] = value
    if tool == "set_timer":
        seconds = out.get("seconds")
        if seconds is None:
            raise ToolCallError("For how long should I set the timer?")
        _check_span(seconds, "a timer")
    elif tool == "set_reminder":
        if "seconds" not in out and "at" not in out:
            raise ToolCallError("When should I remind you?")
        if "seconds" in out:
            _check_span(out["seconds"], "a reminder")
        if "at" in out and not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", out["at"]):
            raise ToolCallError(f"I can't read {out['at']} as a time of day.")
        if not out.get("text"):
            out["text"] = "your reminder"
    elif tool == "remember" and not out.get("text"):
        raise ToolCallError("What should I remember?")
    elif tool == "volume":
        change = out.get("change", "set" if "level" in out else None)
        if change is None:
            raise ToolCallError("Should I speak louder or quieter?")
        out["change"] = change
        if change == "set":
            if "level" not in out:
                raise ToolCallError("To what volume, from 0 to 100?")
            if not 0 <= out["level"] <= 100:
                raise ToolCallError(f"The volume goes from 0 to 100, not {out['level']}.")
    elif tool == "switch_persona" and not out.get("name"):
        raise ToolCallError("Which persona should I switch to?")
    elif tool == "spell":
        word = re.sub(r"[^A-Za-z'\-]", "", str(out.get("word", "")))
        if not re.search(r"[A-Za-z]", word):
            raise ToolCallError("Which word should I spell?")
        out["word"] = word
    elif tool == "forget":
        out.setdefault("which", "query" if out.get("query") else "last")
        if out["which"] == "query" and not out.get("query"):
            raise ToolCallError("What should I forget?")
    return out


def _check_span(seconds: float, what: str) -> None:
    if not math.isfinite(seconds) or seconds > 1000 * MAX_TIMER_S:
        raise ToolCallError(f"I can't set {what} that long; the longest is 24 hours.")
    if seconds < 1:
        raise ToolCallError(f"I can't set {what} for less than a second.")
    if seconds > MAX_TIMER_S:
        raise ToolCallError(f"I can't set {what} for {say_span(seconds)}; the longest is 24 hours.")
