# SPDX-License-Identifier: GPL-3.0-or-later
"""Acting on an intent: gate -> (grammar-constrained LLM call) -> validation -> the tool -> a short reply.

The flow for one transcript (:meth:`ToolRunner.reply`):

1. :func:`.intents.candidates` (regular expressions): no candidate is an ordinary question,
   which costs nothing more;
2. the rules read the arguments they can (:func:`.intents.parse_args`). When there is exactly
   one candidate and its rule arguments validate, the tool runs without an LLM call;
3. otherwise the LLM writes the call, constrained by llama.cpp's grammar to
   ``{"tool": <a candidate or "none">, "args": {...}}``; the rule's arguments override the
   model's where both exist (rules do not invent numbers);
4. :func:`.registry.validate` checks the arguments; a bad call is answered with a short
   sentence and logged; the tool's handler (:mod:`.handlers`) runs and its sentence is the reply.

The LLM's call stops between tokens when the reply is interrupted (the turn's cancel flag).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..memory import MemoryStoreError, query_words
from ..skill import Reply, SkillContext, Turn
from .handlers import ToolCall, run_tool, translation_languages
from .intents import candidates, parse_args
from .phrasing import device_status, flip_person, recall_answer, timer_name
from .registry import NONE, TOOLS, ToolCallError, call_schema, parse_call, tool_prompt, validate

if TYPE_CHECKING:
    from ..translate.mode import TranslationSkill
    from ..vision.skill import VisionSkill

log = logging.getLogger(__name__)

__all__ = ["Decision", "ToolRunner", "choose_with_llm", "device_status", "flip_person", "llm_call_text",
           "recall_answer", "timer_name", "translation_languages"]

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


def llm_call_text(llm: Any, text: str, allowed: list[str], *, grammar: bool,
                  persona_names: tuple[str, ...] = (), cancel: threading.Event | None = None) -> str:
    """What the LLM writes as the call for ``text`` among ``allowed`` (grammar-constrained or free)."""
    messages = [{"role": "system", "content": tool_prompt(allowed)}, {"role": "user", "content": text}]
    schema = call_schema(allowed, persona_names) if grammar else None
    # The tool's name first: the model commits to a tool, then writes that tool's arguments.
    kwargs: dict[str, Any] = {"prop_order": ["tool", "args"]}
    if cancel is not None:
        kwargs["cancel"] = cancel
    return str(llm.complete_json(messages, schema, **kwargs))


def choose_with_llm(llm: Any, text: str, allowed: list[str], *, grammar: bool,
                    persona_names: tuple[str, ...] = (), cancel: threading.Event | None = None,
                    ) -> tuple[str, dict[str, Any], str]:
    """The LLM's call for ``text`` among ``allowed``: (tool, args, raw text); ToolCallError if unusable."""
    raw = llm_call_text(llm, text, allowed, grammar=grammar, persona_names=persona_names, cancel=cancel)
    tool, args = parse_call(raw)
    return tool, args, raw


class ToolRunner:
    """The tools skill: decides whether a turn asks for a tool, runs it, and returns its reply."""

    name = "tools"

    def __init__(self, ctx: SkillContext, *, vision: VisionSkill | None = None,
                 translation: TranslationSkill | None = None) -> None:
        self.ctx = ctx
        self.vision = vision
        self.translation = translation

    # ------------------------------------------------------------------ deciding
    def allowed(self) -> list[str]:
        persona = self.ctx.personal.persona
        return [name for name in TOOLS if persona.allows(name)]

    def decide(self, text: str, cancel: threading.Event | None = None) -> Decision | None:
        """The call for ``text``, or None for an ordinary question (blocking: may call the LLM)."""
        personal = self.ctx.personal
        names = personal.persona_names()
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
                f"I can't {TOOLS[found[0]].description} as the {personal.persona.name} persona."))
        found = [c for c in found if c in allowed]
        if len(found) == 1:
            try:
                args = validate(found[0], rule_args[found[0]], allowed)
                return Decision(found[0], args, found)
            except ToolCallError as err:
                if rule_args[found[0]]:  # read, but not usable ("3 days"): say why, do not guess
                    return Decision(found[0], rule_args[found[0]], found, error=str(err))
                # the rule could not read the arguments: ask the model
        llm = self.ctx.engines.llm
        if llm is None:
            return Decision(found[0], rule_args[found[0]], found)
        started = time.perf_counter()
        decision = Decision(found[0], rule_args[found[0]], found, how="rule-fallback")
        try:
            tool, args, raw = choose_with_llm(llm, text, found, grammar=self.ctx.config.tools.grammar,
                                              persona_names=names, cancel=cancel)
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
        store = self.ctx.personal.memory
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

    def claims(self, text: str) -> bool:
        """The word gate says a tool may be wanted (see :meth:`.Dispatcher.goes_to_chat`)."""
        if not self.ctx.config.tools.enabled:
            return False
        return bool(candidates(text, self.ctx.personal.persona_names())) or self.clear_memory_match(text)

    # ------------------------------------------------------------------ acting
    async def reply(self, turn: Turn) -> Reply | None:
        """The reply of the tool ``turn`` asks for; None for an ordinary question."""
        if not self.claims(turn.text):
            # An ordinary question, told on the event loop: queued on the llm worker, even this
            # "no" would wait behind an answer that worker may already be writing (:mod:`..anticipate`).
            return None
        trace, text = turn.trace, turn.text
        started = time.monotonic()
        decision = await self.ctx.call("llm", self.decide, text, turn.cancel)
        if decision is None:
            return None
        trace.span("tools", f"{decision.tool} ({decision.how})", started, time.monotonic())
        trace.tool = {"tool": decision.tool, "args": decision.args, "how": decision.how,
                      "candidates": decision.candidates, "raw": decision.raw}
        answer: str | Reply
        try:
            if decision.error:
                raise ToolCallError(decision.error)
            args = validate(decision.tool, decision.args, self.allowed())
            trace.tool["args"] = args
            answer = await run_tool(ToolCall(
                decision.tool, args, turn, self.ctx, look=self.vision.look if self.vision else None,
                start_translation=self.translation.start if self.translation else None))
        except ToolCallError as err:
            answer = str(err)
            trace.tool["error"] = answer
            log.warning("turn %d: tool %s not run: %s", trace.turn, decision.tool, answer)
        except MemoryStoreError as err:
            answer = err.spoken
            trace.tool["error"] = str(err)
            log.error("turn %d: %s", trace.turn, err)
        if isinstance(answer, Reply):  # another skill answered for the tool (the photo)
            return answer
        if decision.tool == "recall" and answer == "":
            return None  # nothing remembered about it: the model answers as usual
        return Reply.say(answer)
