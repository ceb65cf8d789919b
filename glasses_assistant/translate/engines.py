# SPDX-License-Identifier: GPL-3.0-or-later
"""Translators behind one interface: ``translate(text, source, target) -> Translation``.

* :class:`LlmTranslator`: a chat model (a local GGUF through :class:`~..engines.llm.LlamaEngine`,
  or a server's through :class:`~..engines.remote.RemoteLlm`: both have the same ``stream()``)
  with a tight translation prompt, greedy and short. Its output is cleaned (no quotes, no
  "Translation:" preamble, one line) and checked: an empty reply, the source echoed back or
  a chat answer instead of a translation becomes :data:`NOT_TRANSLATED`'s honest answer.
* :class:`WhisperTranslator`: Whisper's own speech-to-English (``task=translate``); audio in,
  so it translates speech only, and only into English.

All are blocking and thread-confined like the engines they wrap.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .languages import name

NOT_TRANSLATED = "Sorry, I couldn't translate that."

SYSTEM_PROMPT = ("You are a translation engine. You translate exactly what the user writes and reply with "
                 "the translation only.")


@dataclass
class Translation:
    """One translation: ``ok`` False means ``text`` is the honest "couldn't translate" answer."""

    text: str
    source: str
    target: str
    engine: str
    model: str
    ok: bool = True
    raw: str = ""
    """The engine's output before cleaning."""
    timings: dict[str, float] = field(default_factory=dict)
    why: str = ""
    """Why a translation was rejected (empty, echo, chat answer...)."""


class Translator(Protocol):
    engine: str
    model: str

    def translate(self, text: str, source: str, target: str, *,
                  on_piece: Callable[[str], None] | None = None,
                  cancel: threading.Event | None = None) -> Translation:
        """Blocking; stops between tokens once ``cancel`` is set (an interrupted reply)."""
        ...


class ChatModel(Protocol):
    def stream(self, messages: list[dict[str, str]], on_token: Callable[[str], None], *,
               cancel: Any = None, max_tokens: int | None = None) -> str: ...


def messages_for(text: str, source: str, target: str) -> list[dict[str, str]]:
    """The prompt: measured on the 0.5B and 1.5B Qwen, the instruction in the user turn keeps them on task."""
    known = f"{name(source)} " if source and source != "auto" else ""  # unknown: the model works it out
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Translate this {known}text into {name(target)}:\n{text.strip()}"}]


_PREAMBLE = re.compile(
    r"^\s*(?:(?:here\s+is|here's)\s+(?:the|a|my)\s+(?:\w+\s+)?translation[^:\n]*:|"
    r"(?:the\s+)?(?:\w+\s+)?translation(?:\s+\w+)*\s*:|translated(?:\s+text)?\s*:|"
    r"(?:in\s+)?(?:english|french|spanish|german|italian|portuguese|dutch)\s*:)\s*",
    re.IGNORECASE,
)
_QUOTES = "\"'“”„«»‘’‚`"
_CHATTY = re.compile(
    r"\b(?:I'm sorry|I am sorry|as an AI|I cannot|I can't|I can not|the user|this (?:text|sentence|phrase) "
    r"(?:means|is|translates)|translates to|translation of|in this context|sure[,!]|certainly[,!]|"
    r"here is|here.s)\b",
    re.IGNORECASE,
)


def clean_translation(raw: str) -> str:
    """The first line of the reply without preamble, quotes, notes or markdown."""
    text = raw.strip().replace("\r", "")
    text = re.sub(r"^```\w*\s*|```$", "", text).strip()
    text = _PREAMBLE.sub("", text, count=1).strip()
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    if not lines:
        return ""
    text = lines[0]
    if _PREAMBLE.match(text) and len(lines) > 1:
        text = lines[1]
    text = _PREAMBLE.sub("", text, count=1).strip()
    text = re.sub(r"\s*\((?:or|literally|lit\.|note|i\.e\.)[^)]*\)\s*$", "", text, flags=re.IGNORECASE)
    text = re.sub(r"[*_#]+", "", text).strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES + ".!?":
        end = -1 if text[-1] in _QUOTES else -2
        if text[end] not in _QUOTES:
            break
        punct = text[-1] if end == -2 else ""
        text = (text[1:end] + punct).strip()
    return text.strip(_QUOTES + " ").strip()


def _norm(s: str) -> str:
    return re.sub(r"[\W_]+", " ", s.lower()).strip()


def rejection(source_text: str, cleaned: str, source: str, target: str) -> str:
    """Why ``cleaned`` is not a usable translation of ``source_text`` ("" if it is)."""
    if not re.search(r"\w", cleaned):
        return "empty"
    if source != target and _norm(cleaned) == _norm(source_text) and len(_norm(source_text)) > 3:
        return "echo"
    if _CHATTY.search(cleaned):
        return "chat answer"
    words = _norm(cleaned).split()
    grams = [" ".join(words[i:i + 2]) for i in range(len(words) - 1)]
    if grams and max(grams.count(g) for g in grams) >= 3:
        return "repetition"
    n_src, n_out = len(source_text.split()), len(cleaned.split())
    if n_out > 3 * n_src + 8:
        return "too long"
    return ""


class LlmTranslator:
    """Translation by a chat model (local GGUF or server) with a tight prompt."""

    def __init__(self, llm: ChatModel, *, model: str, engine: str = "llm", max_tokens: int = 96) -> None:
        self.llm = llm
        self.model = model
        self.engine = engine
        self.max_tokens = max_tokens

    def translate(self, text: str, source: str, target: str, *,
                  on_piece: Callable[[str], None] | None = None,
                  cancel: threading.Event | None = None) -> Translation:
        t0 = time.perf_counter()
        if not text.strip():
            return Translation(NOT_TRANSLATED, source, target, self.engine, self.model, ok=False, why="no text")
        if source == target:
            return Translation(text.strip(), source, target, self.engine, self.model)
        # A translation is about as long as its source: the cap stops a model that rambles.
        budget = min(self.max_tokens, 24 + 3 * len(text.split()))
        first: list[float] = []

        def piece(p: str) -> None:
            if not first:
                first.append(time.perf_counter())
            if on_piece is not None:
                on_piece(p)

        raw = self.llm.stream(messages_for(text, source, target), piece, max_tokens=budget, cancel=cancel)
        done = time.perf_counter()
        if cancel is not None and cancel.is_set():
            return Translation(NOT_TRANSLATED, source, target, self.engine, self.model, ok=False, raw=raw,
                               timings={"translate_s": round(done - t0, 4)}, why="interrupted")
        cleaned = clean_translation(raw)
        why = rejection(text, cleaned, source, target)
        timings = {"translate_s": round(done - t0, 4),
                   "first_token_s": round((first[0] if first else done) - t0, 4)}
        if why:
            return Translation(NOT_TRANSLATED, source, target, self.engine, self.model, ok=False, raw=raw,
                               timings=timings, why=why)
        return Translation(cleaned, source, target, self.engine, self.model, raw=raw, timings=timings)


class WhisperTranslator:
    """Whisper's speech-to-English (``task=translate``): speech in, English text out."""

    engine = "whisper"

    def __init__(self, stt: Any, *, model: str) -> None:
        self.stt = stt
        self.model = model

    def translate_speech(self, audio: np.ndarray, source: str | None) -> Translation:
        t0 = time.perf_counter()
        tr = self.stt.transcribe(audio, language=source, detect=source is None, task="translate")
        timings = {"translate_s": round(time.perf_counter() - t0, 4)}
        cleaned = clean_translation(tr.text)
        if tr.is_empty or not re.search(r"\w", cleaned):
            return Translation(NOT_TRANSLATED, tr.language, "en", self.engine, self.model, ok=False, raw=tr.text,
                               timings=timings, why="empty")
        return Translation(cleaned, tr.language, "en", self.engine, self.model, raw=tr.text, timings=timings)

    def translate(self, text: str, source: str, target: str, *,
                  on_piece: Callable[[str], None] | None = None,
                  cancel: threading.Event | None = None) -> Translation:
        return Translation(NOT_TRANSLATED, source, target, self.engine, self.model, ok=False,
                           why="Whisper translates speech only")
