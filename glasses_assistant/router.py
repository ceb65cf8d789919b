# SPDX-License-Identifier: GPL-3.0-or-later
"""Which LLM answers a question: the local model or the configured server.

Pure logic over the question text and ``[remote]`` settings (no clock, no network), so every
decision is unit-tested. The policies:

* ``local`` (the default): always the local model; nothing is ever sent anywhere;
* ``remote``: always the server (the local model still answers when the server fails);
* ``escalate``: the local model first; the server only for questions a 135M-parameter model
  should not answer: long ones, multi-step ones, and ones where the wearer asks for it
  ("ask the big model ..."; the phrase is removed from what is sent).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .config import RemoteConfig

LOCAL, REMOTE = "local", "remote"

# "ask the big model", "use the bigger brain", "ask the server": said anywhere in the question,
# with the punctuation around it, so "Ask the big model: why is the sky blue?" leaves "why is the sky blue?".
_EXPLICIT = re.compile(
    r"[\s,;:.!-]*\b(?:please\s+)?(?:ask|use|try)\s+(?:the\s+)?(?:big|bigger|large|larger)\s+"
    r"(?:model|brain|one|assistant)\b(?:\s+to\b)?[\s,;:.!-]*"
    r"|[\s,;:.!-]*\b(?:please\s+)?(?:ask|use)\s+the\s+server\b(?:\s+to\b)?[\s,;:.!-]*",
    re.IGNORECASE,
)

# Questions that need several steps of reasoning or a plan, which the small model gets wrong.
_MULTI_STEP = re.compile(
    r"\bstep[- ]by[- ]step\b|\bsteps?\s+(?:to|for)\b|\bhow\s+(?:do|can|should|would)\s+(?:i|we|you)\b"
    r"|\bexplain\b|\bcompare\b|\bdifference\s+between\b|\bpros\s+and\s+cons\b|\bplan\b|\bsummari[sz]e\b"
    r"|\bcalculate\b|\bwhy\b.+\band\b|\bfirst\b.+\bthen\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Route:
    """Where one question goes, what is sent, and why (the reason goes into the turn's trace)."""

    target: str
    """local or remote."""
    question: str
    """The question as the LLM sees it (an explicit "ask the big model" removed)."""
    reason: str


def strip_explicit(question: str) -> tuple[str, bool]:
    """The question without "ask the big model" (and the like), and whether it was there."""
    stripped, n = _EXPLICIT.subn(" ", question)
    if not n:
        return question, False
    stripped = re.sub(r"\s+", " ", stripped).strip(" ,;:-")
    return (stripped[:1].upper() + stripped[1:]) if stripped else stripped, True


def decide(question: str, cfg: RemoteConfig) -> Route:
    """The route for ``question`` under ``cfg`` (see the module docstring)."""
    text, explicit = strip_explicit(question)
    if cfg.policy == LOCAL or not cfg.url:
        # Remote is off: even an explicit request stays on the device (the phrase is still removed).
        return Route(LOCAL, text or question, "remote off")
    if cfg.policy == REMOTE:
        return Route(REMOTE, text or question, "policy remote")
    if explicit and text:
        return Route(REMOTE, text, "asked for the big model")
    if len(text.split()) > cfg.escalate_words:
        return Route(REMOTE, text, f"long question (> {cfg.escalate_words} words)")
    if _MULTI_STEP.search(text) or text.count("?") >= 2:
        return Route(REMOTE, text, "multi-step question")
    return Route(LOCAL, text or question, "simple question")
