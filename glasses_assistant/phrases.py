# SPDX-License-Identifier: GPL-3.0-or-later
"""Cut the LLM's token stream into phrases that Piper can speak one at a time.

The first phrase is cut early, at a clause boundary (a comma, a colon, a dash)
once it has a few words, so the wearer hears the answer start while the model is
still writing it; later phrases are whole sentences, which sound more natural.
A phrase never runs past ``max_chars``: a long run-on is cut at a word boundary.
Markdown, emoji and other things a voice cannot say are removed.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s")
_CLAUSE_END = re.compile(r"[,;:—–]\s|\s[-–—]\s")
_ENDS_A_WORD_SENTENCE = re.compile(r"[A-Za-z][.!?]$")
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "approx",
    "no", "fig", "mt", "ft", "inc", "ltd", "co", "jan", "feb", "mar", "apr", "jun", "jul",
    "aug", "sep", "sept", "oct", "nov", "dec", "a.m", "p.m", "u.s",
}
_UNSPEAKABLE = re.compile(
    "[*_#`~|<>\\[\\]{}\\\\^]"  # markdown and markup
    "|[\U0001f000-\U0001faff\U00002600-\U000027bf\U0000fe0f\U0001f1e6-\U0001f1ff]"  # emoji
)
_SPACES = re.compile(r"\s+")


def clean_for_speech(text: str) -> str:
    """Drop markdown, emoji and markup; collapse white space."""
    text = _UNSPEAKABLE.sub(" ", text)
    text = re.sub(r"^\s*(?:\d+[.)]|[-•])\s+", "", text)  # a list bullet at the start
    return _SPACES.sub(" ", text).strip()


def is_speakable(text: str) -> bool:
    """True when a phrase has at least one letter or digit."""
    return any(ch.isalnum() for ch in text)


class PhraseChunker:
    """Feed tokens with :meth:`push`; phrases come out as soon as they are complete."""

    def __init__(self, *, first_phrase_words: int = 4, max_chars: int = 160) -> None:
        self.first_phrase_words = first_phrase_words
        self.max_chars = max_chars
        self._buf = ""
        self._emitted = 0

    def push(self, token: str) -> list[str]:
        """Add a token; return the phrases it completed (often none)."""
        self._buf += token
        out: list[str] = []
        while (cut := self._find_cut()) is not None:
            phrase, self._buf = self._buf[:cut], self._buf[cut:].lstrip()
            self._emit(phrase, out)
        return out

    def flush(self) -> list[str]:
        """The reply is complete: whatever is left is the last phrase."""
        out: list[str] = []
        phrase, self._buf = self._buf, ""
        self._emit(phrase, out)
        return out

    def _emit(self, phrase: str, out: list[str]) -> None:
        phrase = clean_for_speech(phrase)
        if is_speakable(phrase):
            out.append(phrase)
            self._emitted += 1

    def _find_cut(self) -> int | None:
        buf = self._buf
        for m in _SENTENCE_END.finditer(buf):
            if not self._is_abbreviation(buf, m.start()):
                return m.end()
        if self._emitted == 0 and _ENDS_A_WORD_SENTENCE.search(buf) and not self._is_abbreviation(buf, len(buf) - 1):
            # The first sentence ("Paris.") goes now, not one token later when the space after it
            # arrives: the wearer waits for this one. A word before the mark, so "3." (of "3.5") waits.
            return len(buf)
        newline = buf.find("\n")
        if newline > 0 and buf[:newline].strip():
            return newline + 1
        if self._emitted == 0:
            for m in _CLAUSE_END.finditer(buf):
                if len(buf[: m.start()].split()) >= self.first_phrase_words:
                    return m.end()
        if len(buf) > self.max_chars:
            space = buf.rfind(" ", 0, self.max_chars)
            return space + 1 if space > 0 else self.max_chars
        return None

    @staticmethod
    def _is_abbreviation(buf: str, dot: int) -> bool:
        """A '.' after Dr, e.g, a single initial (J.) or a number like '3.' in '3.5'."""
        if buf[dot] != ".":
            return False
        word = re.search(r"([A-Za-z.]+)$", buf[:dot])
        if word is None:
            return False
        w = word.group(1).lower().rstrip(".")
        return w in _ABBREVIATIONS or (len(w) == 1 and w.isalpha() and buf[dot - 1].isupper())
