# SPDX-License-Identifier: GPL-3.0-or-later
"""Captions: the running transcript and its translation as a stream of text events.

The loop emits a :class:`CaptionEvent` for what was heard (``transcript``) and for what it
became (``translation``). ``run`` prints them on the terminal; with glasses that have a
display they also go over the bridge as Caption messages (``docs/protocol.md``).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

Kind = Literal["transcript", "translation", "answer"]
"""``answer``: a phrase of the reply as it starts playing (for a display that shows the answer text)."""


@dataclass(frozen=True)
class CaptionEvent:
    kind: Kind
    text: str
    language: str
    final: bool = True
    t: float = field(default_factory=time.monotonic)
    turn: int = 0

    def line(self) -> str:
        """One terminal line: ``[fr] Où est la gare ?`` / ``  -> [en] Where is the station?``."""
        arrow = "  -> " if self.kind == "translation" else ""
        return f"{arrow}[{self.language or '?'}] {self.text}"


Listener = Callable[[CaptionEvent], Any]


class Captions:
    """Listeners of caption events (a listener may be a coroutine function; its failure is logged, not raised)."""

    def __init__(self) -> None:
        self.listeners: list[Listener] = []
        self.history: list[CaptionEvent] = []
        self.keep = 200

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    async def emit(self, event: CaptionEvent) -> None:
        self.history.append(event)
        del self.history[: -self.keep]
        for listener in list(self.listeners):
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception as err:  # a display that fails must not stop the translation
                log.warning("caption listener failed: %s", err)


def display_listener(client: Any) -> Listener:
    """The answer text, and captions, on a display that shows one text (``client.show_text``, never waits).

    The answer grows phrase by phrase while it is spoken; a caption replaces it."""
    shown: dict[str, Any] = {"turn": None, "text": ""}

    def show(event: CaptionEvent) -> None:
        if event.kind == "answer":
            if shown["turn"] != event.turn:
                shown["turn"], shown["text"] = event.turn, ""
            shown["text"] = f"{shown['text']} {event.text}".strip()
            client.show_text(shown["text"])
        else:
            shown["turn"] = None
            client.show_text(event.text)

    return show


def bridge_listener(client: Any) -> Listener:
    """Send captions to the glasses' display (nothing is sent when they have none)."""
    from firmware_bridge.messages import Caption

    async def send(event: CaptionEvent) -> None:
        if event.kind == "answer":
            return  # the bridge protocol's captions are what was heard and its translation
        kind = Caption.TRANSLATION if event.kind == "translation" else Caption.TRANSCRIPT
        await client.caption(event.text, kind=kind, language=event.language, final=event.final,
                             caption_id=event.turn)

    return send
