"""Acting on an intent: gate -> (grammar-constrained LLM call) -> validation -> the tool -> a short reply.

The flow for one transcript (:meth:`ToolRunner.act`):

1. :func:`.intents.candidates` (regular expressions): no candidate is an ordinary question,
   which costs nothing more;
2. the rules read the arguments they can (:func:`.intents.parse_args`). When there is exactly
   one candidate and its rule arguments validate, the tool runs without an LLM call;
3. otherwise the LLM writes the call, constrained by llama.cpp's grammar to
   ``{"tool": <a candidate or "none">, "args": {...}}``; the rule's arguments override the
   model's where both exist (rules do not invent numbers);
4. :func:`.registry.validate` checks the arguments; a bad call is answered with a short
   sentence and logged; the tool runs; its sentence is spoken.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..memory import Memory, MemoryStoreError, query_words
from .intents import candidates, parse_args, say_duration, say_span
from .registry import NONE, TOOLS, ToolCallError, call_schema, parse_call, tool_prompt, validate

if TYPE_CHECKING:
    from ..audio.io import AudioSink
    from ..camera import Camera
    from ..pipeline import Assistant
    from ..trace import TurnTrace

log = logging.getLogger("glasses_assistant")

NO_TRANSLATION = "Translation isn't available in this build."
_QUESTION = re.compile(r"\?\s*$|^\W*(what|where|when|who|which|how|is|are|do|does|did)\b", re.IGNORECASE)


@dataclass
class Decision:
    """What the tool step decided for one transcript, and how (goes into the turn's trace)."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    candidates: list[str] = field(default_factory=list)
    how: str = "rule"
    """rule (no LLM call), llm (the model's choice), or rule-fallback (the model said none or erred)."""
    raw: str = ""
    error: str | None = None
    llm_s: float = 0.0


def flip_person(text: str) -> str:
    """The wearer's words said back to them: "my car is on level 3" -> "your car is on level 3"."""
    swaps = {"i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself", "i'm": "you're",
             "am": "are", "i've": "you've", "i'll": "you'll", "i'd": "you'd", "we": "you", "our": "your"}
    return re.sub(r"[A-Za-z']+", lambda m: swaps.get(m.group(0).lower(), m.group(0)), text)


def llm_call_text(llm: Any, text: str, allowed: list[str], *, grammar: bool,
                  persona_names: tuple[str, ...] = ()) -> str:
    """What the LLM writes as the call for ``text`` among ``allowed`` (grammar-constrained or free)."""
    messages = [{"role": "system", "content": tool_prompt(allowed)}, {"role": "user", "content": text}]
    schema = call_schema(allowed, persona_names) if grammar else None
    # The tool's name first: the model commits to a tool, then writes that tool's arguments.
    return str(llm.complete_json(messages, schema, prop_order=["tool", "args"]))


def choose_with_llm(llm: Any, text: str, allowed: list[str], *, grammar: bool,
                    persona_names: tuple[str, ...] = ()) -> tuple[str, dict[str, Any], str]:
    """The LLM's call for ``text`` among ``allowed``: (tool, args, raw text); ToolCallError if unusable."""
    raw = llm_call_text(llm, text, allowed, grammar=grammar, persona_names=persona_names)
    tool, args = parse_call(raw)
    return tool, args, raw


class ToolRunner:
    """The tools of one assistant (its memory, personas, camera, bridge, voice)."""

    def __init__(self, assistant: Assistant) -> None:
        self.a = assistant

    # ------------------------------------------------------------------ deciding
    def allowed(self) -> list[str]:
        return [name for name in TOOLS if self.a.persona.allows(name)]

    def decide(self, text: str) -> Decision | None:
        """The call for ``text``, or None for an ordinary question (blocking: may call the LLM)."""
        names = self.a.persona_names()
        allowed = self.allowed()
        found = [c for c in candidates(text, names) if c in TOOLS]
        if not found and self.clear_memory_match(text):
            found = ["recall"]  # "what's the wifi password?" when the wearer told it: answer from memory
        if not found:
            return None
        rule_args = {c: parse_args(c, text, names) for c in found}
        if "switch_persona" in found and "name" not in rule_args["switch_persona"]:
            found.remove("switch_persona")  # "switch to French" is not a persona
            if not found:
                return None
        if not any(c in allowed for c in found):
            return Decision(found[0], rule_args[found[0]], found, error=(
                f"I can't {TOOLS[found[0]].description} as the {self.a.persona.name} persona."))
        found = [c for c in found if c in allowed]
        if len(found) == 1:
            try:
                args = validate(found[0], rule_args[found[0]], allowed)
                return Decision(found[0], args, found)
            except ToolCallError as err:
                if rule_args[found[0]]:  # read, but not usable ("3 days"): say why, do not guess
                    return Decision(found[0], rule_args[found[0]], found, error=str(err))
                # the rule could not read the arguments: ask the model
        if self.a.llm is None:
            return Decision(found[0], rule_args[found[0]], found)
        started = time.perf_counter()
        decision = Decision(found[0], rule_args[found[0]], found, how="rule-fallback")
        try:
            tool, args, raw = choose_with_llm(self.a.llm, text, found, grammar=self.a.config.tools.grammar,
                                              persona_names=names)
            decision.raw = raw
            if tool != NONE and tool in found:
                decision.tool, decision.how = tool, "llm"
                decision.args = {**args, **rule_args[tool]}
        except ToolCallError as err:
            decision.raw = str(err)
        decision.llm_s = time.perf_counter() - started
        return decision

    def clear_memory_match(self, text: str) -> bool:
        """A question whose every content word is in one memory (no synonyms needed): a clear match."""
        store = self.a.memory
        if store is None or not _QUESTION.search(text):
            return False
        asked = query_words(text)
        if not asked:
            return False
        try:
            hits = store.recall(text, 1)
        except MemoryStoreError:
            return False
        if not hits:
            return False
        told = set(query_words(hits[0].text))
        return all(w in told or w.rstrip("s") in told for w in asked)

    # ------------------------------------------------------------------ acting
    async def act(self, text: str, sink: AudioSink, trace: TurnTrace, camera: Camera | None) -> bool:
        """Run the tool ``text`` asks for and speak its answer; False for an ordinary question."""
        a = self.a
        started = time.monotonic()
        decision = await a._call("llm", self.decide, text)
        if decision is None:
            return False
        trace.span("tools", f"{decision.tool} ({decision.how})", started, time.monotonic())
        trace.tool = {"tool": decision.tool, "args": decision.args, "how": decision.how,
                      "candidates": decision.candidates, "raw": decision.raw}
        spoken: str | None
        try:
            if decision.error:
                raise ToolCallError(decision.error)
            args = validate(decision.tool, decision.args, self.allowed())
            trace.tool["args"] = args
            spoken = await self.run(decision.tool, args, text, sink, trace, camera)
        except ToolCallError as err:
            spoken = str(err)
            trace.tool["error"] = spoken
            log.warning("turn %d: tool %s not run: %s", trace.turn, decision.tool, spoken)
        except MemoryStoreError as err:
            spoken = err.spoken
            trace.tool["error"] = str(err)
            log.error("turn %d: %s", trace.turn, err)
        if spoken is None:  # the tool spoke for itself (the photo)
            return True
        if decision.tool == "recall" and spoken == "":
            return False  # nothing remembered about it: the model answers as usual
        await a.say_reply(text, spoken, sink, trace)
        return True

    async def run(self, tool: str, args: dict[str, Any], text: str, sink: AudioSink, trace: TurnTrace,
                  camera: Camera | None) -> str | None:
        """Run one validated call; the sentence to say (None if the tool spoke itself)."""
        a = self.a
        if tool == "time":
            now = dt.datetime.now()
            if args.get("what") == "date":
                return f"It's {now.strftime('%A, %B')} {now.day}, {now.year}."
            return f"It's {now.strftime('%I:%M %p').lstrip('0')}."
        if tool == "take_photo":
            if a.vision is None:  # no camera at all (vision loads with one); else vision says what is wrong
                return "I can't take a photo: there is no camera connected."
            await a.respond_vision("photo", text, sink, trace, camera)
            return None
        if tool == "device_status":
            return device_status(a.bridge)
        if tool == "volume":
            return a.set_volume(args["change"], args.get("level"))
        if tool == "switch_persona":
            return await a.switch_persona(args["name"])
        if tool == "start_translation":
            start = getattr(a, "start_translation", None)
            if start is None:
                return NO_TRANSLATION
            return str(await _maybe_await(start(*_translation_languages(a, args))))
        store = a.memory
        if store is None:
            return a.memory_off_reason()
        if tool == "remember":
            m = await asyncio.to_thread(store.remember, args["text"], turn=trace.turn)
            return f"Okay, I'll remember that {flip_person(_lower_first(m.text))}."
        if tool == "recall":
            hits = await asyncio.to_thread(store.recall, args.get("query") or text, a.config.memory.recall_k)
            return recall_answer(hits)
        if tool == "list_memories":
            items = await asyncio.to_thread(store.memories, 5)
            if not items:
                return "I don't remember anything yet."
            said = "; ".join(flip_person(_lower_first(m.text)) for m in items)
            total = len(await asyncio.to_thread(store.memories))
            more = f" And {total - len(items)} more." if total > len(items) else ""
            return f"I remember {total} thing{'s' * (total != 1)}: {said}.{more}"
        if tool == "forget":
            which = args["which"]
            if which == "last":
                gone = await asyncio.to_thread(store.forget_last)
                return f"Forgotten: {flip_person(_lower_first(gone.text))}." if gone else "There was nothing to forget."
            if which == "all":
                n = await asyncio.to_thread(store.forget_all)
                return f"I've forgotten all {n} memories." if n else "There was nothing to forget."
            gone_list = await asyncio.to_thread(store.forget_matching, args["query"])
            if not gone_list:
                return f"I don't remember anything about {flip_person(args['query'])}."
            return f"Forgotten {len(gone_list)} thing{'s' * (len(gone_list) != 1)} about {flip_person(args['query'])}."
        if tool == "set_timer":
            seconds = args["seconds"]
            label = args.get("label") or f"{say_duration(seconds)}"
            await asyncio.to_thread(store.add_timer, "timer", label, time.time() + seconds, seconds)
            a.timers_changed()
            return f"Timer set for {say_span(seconds)}."
        if tool == "set_reminder":
            due = time.time() + args["seconds"] if "seconds" in args else _next_clock_time(args["at"])
            await asyncio.to_thread(store.add_timer, "reminder", args["text"], due, None)
            a.timers_changed()
            when = f"in {say_span(args['seconds'])}" if "seconds" in args else f"at {args['at']}"
            return f"I'll remind you {when} to {flip_person(args['text'])}."
        if tool == "list_timers":
            pending = await asyncio.to_thread(store.timers)
            if not pending:
                return "No timers or reminders are running."
            now = time.time()
            parts = [f"{timer_name(t.kind, t.label)} in {say_span(max(1, t.due - now))}" for t in pending[:4]]
            return "Running: " + "; ".join(parts) + "."
        if tool == "cancel_timer":
            pending = await asyncio.to_thread(store.timers)
            label = (args.get("label") or "").lower()
            match = [t for t in pending if label and label in t.label.lower()] or pending[-1:]
            if not match:
                return "There is no timer to cancel."
            await asyncio.to_thread(store.set_timer_state, match[0].id, "cancelled")
            a.timers_changed()
            return f"Cancelled the {timer_name(match[0].kind, match[0].label)}."
        raise ToolCallError(f"I don't have a tool called {tool}.")


def timer_name(kind: str, label: str) -> str:
    return f"{label} timer" if kind == "timer" else f"reminder to {flip_person(label)}"


def recall_answer(hits: list[Memory]) -> str:
    """The direct answer to a recall question: the best memory said back; "" if none matched."""
    if not hits:
        return ""
    return f"You told me {flip_person(_lower_first(hits[0].text))}."


def device_status(client: Any) -> str:
    """Battery and temperature from the glasses' telemetry, or an honest answer without them."""
    if client is None:
        return "I'm not connected to the glasses, so I can't read the battery."
    t = getattr(client, "telemetry", None)
    if t is None:
        return "The glasses haven't reported their battery yet."
    charging = ", charging" if t.charging else ""
    return (f"The battery is at {round(t.battery_percent)} percent{charging}. "
            f"The glasses are {t.thermal_state} at {round(t.temperature_c)} degrees.")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != "I " else text


def _next_clock_time(hhmm: str) -> float:
    hour, minute = map(int, hhmm.split(":"))
    now = dt.datetime.now()
    at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if at <= now:
        at += dt.timedelta(days=1)
    return at.timestamp()


async def _maybe_await(value: Any) -> Any:
    if asyncio.iscoroutine(value):
        return await value
    return value


def _translation_languages(a: Any, args: dict[str, Any]) -> tuple[str | None, str | None]:
    """The tool's spoken language names as (partner, wearer) codes for ``start_translation``.

    "Translate into Spanish" names the partner's language (the wearer's words become Spanish),
    as "translate to German" does for the translation intents; a name that is no language is
    passed on as it is, so the wearer hears that it cannot be translated.
    """
    from ..translate.languages import code_for

    def code(word: Any) -> str | None:
        return (code_for(str(word)) or str(word).strip().lower()) if word else None

    source, target = code(args.get("source")), code(args.get("target"))
    if source is None and target is not None and target != a.config.translate.wearer_language:
        return target, None
    return source, target
