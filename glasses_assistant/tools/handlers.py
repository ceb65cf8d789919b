# SPDX-License-Identifier: GPL-3.0-or-later
"""What each tool does, registered under its name in :data:`.registry.TOOLS`.

A handler gets one validated :class:`ToolCall` and returns the sentence to say, or a
:class:`~..skill.Reply` when another skill answers for it (the photo is the vision skill's).
Adding a tool: its :class:`~.registry.ToolSpec` in the registry, its intent in
:mod:`.intents`, and a handler here; a test checks that every spec has a handler.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..memory import MemoryStore
from ..skill import Reply, SkillContext, Turn
from ..translate.languages import code_for
from .intents import say_duration, say_span
from .phrasing import device_status, flip_person, lower_first, recall_answer, timer_name
from .registry import TOOLS, ToolCallError

NO_TRANSLATION = "Translation isn't available in this build."
NO_CAMERA = "I can't take a photo: there is no camera connected."


@dataclass
class ToolCall:
    """One validated call and what its handler may use."""

    tool: str
    args: dict[str, Any]
    turn: Turn
    ctx: SkillContext
    look: Callable[[str, Turn], Awaitable[Reply]] | None = None
    """The vision skill (intent, turn) -> reply, for the photo."""
    start_translation: Callable[[str | None, str | None], Awaitable[str]] | None = None

    @property
    def store(self) -> MemoryStore:
        """The memory store; a memory tool without one is answered with why (see :func:`run_tool`)."""
        assert self.ctx.personal.memory is not None
        return self.ctx.personal.memory


Handler = Callable[[ToolCall], Awaitable["str | Reply"]]
HANDLERS: dict[str, Handler] = {}
NEEDS_MEMORY: set[str] = set()


def handles(name: str, *, memory: bool = False) -> Callable[[Handler], Handler]:
    """Register the handler of tool ``name`` (``memory``: it needs the memory store)."""
    if name not in TOOLS:
        raise ValueError(f"no tool spec named {name!r}")

    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        if memory:
            NEEDS_MEMORY.add(name)
        return fn

    return register


async def run_tool(call: ToolCall) -> str | Reply:
    """Run one validated call: the sentence to say, or another skill's reply."""
    handler = HANDLERS.get(call.tool)
    if handler is None:
        raise ToolCallError(f"I don't have a tool called {call.tool}.")
    if call.tool in NEEDS_MEMORY and call.ctx.personal.memory is None:
        return call.ctx.personal.memory_off_reason()
    return await handler(call)


# ---------------------------------------------------------------------------- the device
@handles("time")
async def _time(call: ToolCall) -> str:
    now = dt.datetime.now()
    if call.args.get("what") == "date":
        return f"It's {now.strftime('%A, %B')} {now.day}, {now.year}."
    return f"It's {now.strftime('%I:%M %p').lstrip('0')}."


@handles("spell")
async def _spell(call: ToolCall) -> str:
    """Letter by letter, from the word as the recogniser wrote it (its spelling is the dictionary's).
    Commas, not dashes: Piper then pauses between the letters, and a listener can tell them apart."""
    word = call.args["word"]
    letters = ", ".join(ch.upper() for ch in word if ch.isalpha())
    return f"{word[:1].upper()}{word[1:].lower()} is spelled {letters}."


@handles("take_photo")
async def _take_photo(call: ToolCall) -> str | Reply:
    if call.ctx.engines.vision is None or call.look is None:
        return NO_CAMERA  # no camera at all (vision loads with one); else vision says what is wrong
    return await call.look("photo", call.turn)


@handles("device_status")
async def _device_status(call: ToolCall) -> str:
    return device_status(call.ctx.bridge)


@handles("volume")
async def _volume(call: ToolCall) -> str:
    return call.ctx.personal.set_volume(call.args["change"], call.args.get("level"))


@handles("switch_persona")
async def _switch_persona(call: ToolCall) -> str:
    return await call.ctx.personal.switch_persona(call.args["name"])


@handles("start_translation")
async def _start_translation(call: ToolCall) -> str:
    if call.start_translation is None:
        return NO_TRANSLATION
    return await call.start_translation(*translation_languages(call.ctx.config.translate.wearer_language, call.args))


def translation_languages(wearer: str, args: dict[str, Any]) -> tuple[str | None, str | None]:
    """The tool's spoken language names as (partner, wearer) codes for ``start_translation``.

    "Translate into Spanish" names the partner's language (the wearer's words become Spanish),
    as "translate to German" does for the translation intents; a name that is no language is
    passed on as it is, so the wearer hears that it cannot be translated.
    """

    def code(word: Any) -> str | None:
        return (code_for(str(word)) or str(word).strip().lower()) if word else None

    source, target = code(args.get("source")), code(args.get("target"))
    if source is None and target is not None and target != wearer:
        return target, None
    return source, target


# ---------------------------------------------------------------------------- memory
@handles("remember", memory=True)
async def _remember(call: ToolCall) -> str:
    m = await asyncio.to_thread(call.store.remember, call.args["text"], turn=call.turn.trace.turn)
    return f"Okay, I'll remember that {flip_person(lower_first(m.text))}."


@handles("recall", memory=True)
async def _recall(call: ToolCall) -> str:
    k = call.ctx.config.memory.recall_k
    hits = await asyncio.to_thread(call.store.recall, call.args.get("query") or call.turn.text, k)
    return recall_answer(hits)


@handles("list_memories", memory=True)
async def _list_memories(call: ToolCall) -> str:
    items = await asyncio.to_thread(call.store.memories, 5)
    if not items:
        return "I don't remember anything yet."
    said = "; ".join(flip_person(lower_first(m.text)) for m in items)
    total = len(await asyncio.to_thread(call.store.memories))
    more = f" And {total - len(items)} more." if total > len(items) else ""
    return f"I remember {total} thing{'s' * (total != 1)}: {said}.{more}"


@handles("forget", memory=True)
async def _forget(call: ToolCall) -> str:
    store, which = call.store, call.args["which"]
    if which == "last":
        gone = await asyncio.to_thread(store.forget_last)
        return f"Forgotten: {flip_person(lower_first(gone.text))}." if gone else "There was nothing to forget."
    if which == "all":
        n = await asyncio.to_thread(store.forget_all)
        return f"I've forgotten all {n} memories." if n else "There was nothing to forget."
    query = call.args["query"]
    gone_list = await asyncio.to_thread(store.forget_matching, query)
    if not gone_list:
        return f"I don't remember anything about {flip_person(query)}."
    return f"Forgotten {len(gone_list)} thing{'s' * (len(gone_list) != 1)} about {flip_person(query)}."


# ---------------------------------------------------------------------------- timers
@handles("set_timer", memory=True)
async def _set_timer(call: ToolCall) -> str:
    seconds = call.args["seconds"]
    label = call.args.get("label") or f"{say_duration(seconds)}"
    await asyncio.to_thread(call.store.add_timer, "timer", label, time.time() + seconds, seconds)
    call.ctx.personal.timers_changed()
    return f"Timer set for {say_span(seconds)}."


@handles("set_reminder", memory=True)
async def _set_reminder(call: ToolCall) -> str:
    args = call.args
    due = time.time() + args["seconds"] if "seconds" in args else next_clock_time(args["at"])
    await asyncio.to_thread(call.store.add_timer, "reminder", args["text"], due, None)
    call.ctx.personal.timers_changed()
    when = f"in {say_span(args['seconds'])}" if "seconds" in args else f"at {args['at']}"
    return f"I'll remind you {when} to {flip_person(args['text'])}."


@handles("list_timers", memory=True)
async def _list_timers(call: ToolCall) -> str:
    pending = await asyncio.to_thread(call.store.timers)
    if not pending:
        return "No timers or reminders are running."
    now = time.time()
    parts = [f"{timer_name(t.kind, t.label)} in {say_span(max(1, t.due - now))}" for t in pending[:4]]
    return "Running: " + "; ".join(parts) + "."


@handles("cancel_timer", memory=True)
async def _cancel_timer(call: ToolCall) -> str:
    pending = await asyncio.to_thread(call.store.timers)
    label = (call.args.get("label") or "").lower()
    match = [t for t in pending if label and label in t.label.lower()] or pending[-1:]
    if not match:
        return "There is no timer to cancel."
    await asyncio.to_thread(call.store.set_timer_state, match[0].id, "cancelled")
    call.ctx.personal.timers_changed()
    return f"Cancelled the {timer_name(match[0].kind, match[0].label)}."


def next_clock_time(hhmm: str) -> float:
    hour, minute = map(int, hhmm.split(":"))
    now = dt.datetime.now()
    at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if at <= now:
        at += dt.timedelta(days=1)
    return at.timestamp()
