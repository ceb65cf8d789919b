# SPDX-License-Identifier: GPL-3.0-or-later
"""The vision skill: "what am I looking at?", "read this", "take a photo", and the tap on the glasses.

It captures a frame after the question (never before: the privacy rule), asks the detector or
the text reader, lets the LLM phrase what the detector found (it may only name objects that
were really detected), and returns the sentence. It never speaks for itself.
"""

from __future__ import annotations

import logging
import threading
import time

from ..engines.remote import RemoteError
from ..phrases import clean_for_speech, is_speakable
from ..skill import Reply, SkillContext, Turn
from .frames import problem
from .intents import VisionIntent, match_vision_intent
from .scene import mentions_any, names_only
from .service import VisionAnswer

log = logging.getLogger(__name__)

BUTTON_QUESTION = "What am I looking at?"


class VisionSkill:
    """Answers about the view through the loaded :class:`~.service.VisionService`."""

    name = "vision"

    def __init__(self, ctx: SkillContext) -> None:
        self.ctx = ctx

    async def reply(self, turn: Turn) -> Reply | None:
        """A vision question when the camera's models are loaded; None otherwise."""
        if self.ctx.engines.vision is None:
            return None
        intent = match_vision_intent(turn.text)
        if intent is None:
            return None
        return await self.look(intent, turn)

    def claims(self, text: str) -> bool:
        """A question about the view while the camera's models are loaded."""
        return self.ctx.engines.vision is not None and match_vision_intent(text) is not None

    async def look(self, intent: VisionIntent | str, turn: Turn) -> Reply:
        """Capture now (after the question), detect or read, and phrase the answer."""
        engines, trace, camera = self.ctx.engines, turn.trace, turn.camera
        assert engines.vision is not None and engines.llm is not None
        started = time.monotonic()
        frame = await camera.capture() if camera is not None and camera.has_camera else None
        trace.span("camera", "capture", started, time.monotonic())
        answer: VisionAnswer | None = None
        if frame is not None and frame.problem is not None:
            spoken = problem(frame.problem, str(frame.metadata.get("error", ""))).spoken
        else:
            started = time.monotonic()
            answer = await self.ctx.call(
                "vision", engines.vision.answer, intent, frame.jpeg if frame else None, question=turn.text,
                metadata=frame.metadata if frame else None, has_camera=frame is not None,
            )
            trace.span("vision", str(intent), started, time.monotonic())
            spoken = answer.spoken
            trace.vision = {"intent": intent, "labels": answer.labels, "maybe": answer.maybe_labels,
                            "facts": answer.facts,
                            "text": [ln.text for ln in answer.lines],
                            "problem": answer.problem.code if answer.problem else None,
                            "photo": str(answer.photo) if answer.photo else None, "timings": answer.timings}
        if answer is not None and answer.llm_prompt and self.ctx.config.vision.phrasing == "llm":
            # The LLM phrases the detector's facts; it must name something that is really
            # there and nothing that is not, else the plain description is said instead.
            messages = [{"role": "system", "content": self.ctx.personal.conversation.system_prompt},
                        {"role": "user", "content": answer.llm_prompt}]
            started = time.monotonic()
            reply, where = await self.ctx.call("llm", self.phrase_view, messages, turn.cancel)
            trace.span("llm", f"phrase the view ({where})", started, time.monotonic())
            cleaned = clean_for_speech(reply)
            if faithful(cleaned, answer.labels):
                spoken = cleaned if not answer.guesses else f"{_ended(cleaned)} {answer.guesses}"
            else:
                log.info("the LLM's phrasing %r strays from the detections %s; saying the plain answer",
                         cleaned, answer.labels)
        return Reply.say(spoken)

    def phrase_view(self, messages: list[dict[str, str]], cancel: threading.Event | None = None) -> tuple[str, str]:
        """The LLM that phrases the detector's facts: local unless ``[remote] vision`` allows the server.

        Only the detector's text is in ``messages``; the frame itself never leaves the device.
        """
        engines = self.ctx.engines
        assert engines.llm is not None
        if engines.remote is not None and self.ctx.config.remote.vision:
            try:
                return engines.remote.stream(messages, lambda _piece: None, cancel=cancel), "remote"
            except RemoteError as err:
                log.warning("%s; the local model phrases the view", err)
        return engines.llm.stream(messages, lambda _piece: None, cancel=cancel), "local"


def faithful(reply: str, labels: list[str]) -> bool:
    """Whether the LLM's phrasing of the view may be said: speakable, naming at least one
    detected object and no object that was not detected, and not the facts' own notation
    echoed back ("a ball (ahead, far)": a small model often parrots it, and brackets are
    not speech)."""
    return (is_speakable(reply) and "(" not in reply and mentions_any(reply, labels)
            and names_only(reply, labels))


def _ended(text: str) -> str:
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else text + "."
