# SPDX-License-Identifier: GPL-3.0-or-later
"""One routing table for every turn, spoken or typed.

The skills are asked in order; the first that returns a reply answers, and the reply goes to
the speaking side (:mod:`.reply`). The order is the product's:

1. translation mode: while it is on, what is said is translated;
2. translation's own phrases ("translate this" is a sign, not the start_translation tool);
3. the tools (timers, memory, photo, persona, volume, battery...);
4. the camera ("what am I looking at?", "read this"), when the vision models are loaded;
5. the chat LLM, which answers everything else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from .audio.io import AudioSink
from .camera import Camera
from .reply import ReplySpeaker
from .skill import Reply, Skill, SkillContext, Turn
from .trace import TurnTrace

log = logging.getLogger(__name__)


class ChatSkill:
    """The last route: the chat LLM answers (streamed by the speaking side)."""

    name = "chat"

    async def reply(self, turn: Turn) -> Reply | None:
        return Reply.from_chat()

    def claims(self, text: str) -> bool:
        return True


class Dispatcher:
    """Routes a turn through the skills and hands the reply to the speaking side."""

    def __init__(self, ctx: SkillContext, speaker: ReplySpeaker, routes: Sequence[Skill]) -> None:
        self.ctx = ctx
        self.speaker = speaker
        self.routes = list(routes)
        """The routing table, in order (see the module docstring)."""
        self.turn_counter = 0

    def new_trace(self, **fields: Any) -> TurnTrace:
        """A trace for the next turn (numbered in order, typed and spoken alike)."""
        self.turn_counter += 1
        return TurnTrace(turn=self.turn_counter, **fields)

    def goes_to_chat(self, text: str) -> bool:
        """Whether ``text`` would reach the chat route, judged without running any skill (each
        route's cheap, side-effect-free ``claims``); a route without one is assumed to take it.
        The answer may be prepared before the turn ends only when this is true (:mod:`.anticipate`)."""
        for skill in self.routes:
            claims = getattr(skill, "claims", None)
            if claims is None or claims(text):
                return isinstance(skill, ChatSkill)
        return False

    async def route(self, turn: Turn) -> Reply:
        """The first skill's reply to ``turn`` (the chat route always answers)."""
        for skill in self.routes:
            reply = await skill.reply(turn)
            if reply is not None:
                return reply
        raise AssertionError("the routing table ends without the chat route")

    async def answer(self, turn: Turn, sink: AudioSink) -> TurnTrace:
        """Route ``turn`` and say the reply into ``sink``."""
        reply = await self.route(turn)
        await self.speaker.deliver(reply, turn, sink)
        return turn.trace

    async def answer_typed(self, question: str, sink: AudioSink, *, camera: Camera | None = None) -> TurnTrace:
        """A typed question (`run --text`): the same table as a spoken one."""
        now = time.monotonic()
        trace = self.new_trace(transcript=question, speech_end=now, end_detected=now, transcript_final=now)
        return await self.answer(Turn(question, trace, camera=camera), sink)
