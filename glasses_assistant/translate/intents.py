# SPDX-License-Identifier: GPL-3.0-or-later
"""Which translation request, if any, the wearer just said (from Whisper's transcript).

* ``start``: "translate for me", "translate from Spanish", "translate to German",
  "translate from French to English", "be my interpreter", "start translating";
* ``stop``: "stop translating", "stop translation", "stop", "end translation";
* ``sign``: "translate this", "translate that sign", "what does this sign say in English",
  "translate this into French" (what the camera sees).

Languages: ``source`` is the partner's language (None: detect it each turn); ``target`` is
the language the partner's words become (None: ``[translate] wearer_language``). "Translate
to German" names the partner's language (the wearer's words become German), except for a sign,
where it names the language the sign is read out in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..vision.intents import normalise
from .languages import code_for

Action = Literal["start", "stop", "sign"]


@dataclass(frozen=True)
class TranslateIntent:
    action: Action
    source: str | None = None
    target: str | None = None
    unknown_language: str | None = None
    """A language word the wearer said that is not known (e.g. "Klingon")."""


_LANG = r"([a-z]+)"
_STOP = re.compile(
    r"^(?:please\s+)?(?:stop|end|quit|exit|cancel|finish|turn\s+off|switch\s+off)\s+(?:the\s+)?"
    r"(?:translating|translation|translate|translator|interpreting|interpreter)(?:\s+mode)?(?:\s+please)?$"
    r"|^(?:that s|thats)\s+enough\s+translat\w*$"
    r"|^(?:no\s+more|done)\s+translat\w*$"
)
_SIGN = re.compile(
    r"^(?:please\s+|can\s+you\s+|could\s+you\s+)?translate\s+(?:this|that|the|this\s+\w+|that\s+\w+|the\s+\w+|it)"
    r"(?:\s+(?:sign|text|menu|label|notice|board|writing))?(?:\s+(?:for\s+me|please))?"
    r"(?:\s+(?:in|into|to)\s+" + _LANG + r")?(?:\s+please)?$"
    r"|^what\s+(?:does|do|did)\s+(?:this|that|the|it)(?:\s+\w+)?\s+(?:say|mean|read)s?\s+in\s+" + _LANG + "$"
    r"|^what\s+(?:is|s)\s+(?:this|that)(?:\s+\w+)?\s+in\s+" + _LANG + "$"
)
_START = re.compile(
    r"^(?:please\s+|can\s+you\s+|could\s+you\s+)?(?:start\s+)?(?:translate|translating|translation|interpret)"
    r"(?:\s+mode)?(?:\s+(?:for|with)\s+(?:me|us))?"
    r"(?:\s+from\s+" + _LANG + r")?(?:\s+(?:to|into)\s+" + _LANG + r")?(?:\s+(?:for|with)\s+(?:me|us))?"
    r"(?:\s+please)?$"
    r"|^(?:be\s+my|act\s+as\s+(?:my|an?))\s+(?:interpreter|translator)$"
    r"|^(?:start|turn\s+on|switch\s+on|begin)\s+(?:the\s+)?(?:translation|translator|interpreter|translating)"
    r"(?:\s+mode)?(?:\s+from\s+" + _LANG + r")?(?:\s+(?:to|into)\s+" + _LANG + r")?$"
)


def match_translate_intent(transcript: str) -> TranslateIntent | None:
    """The translation request in a transcript, or None (anything else)."""
    t = normalise(transcript)
    t = re.sub(r"^(?:hey|ok|okay)\s+(?:glasses\s+)?", "", t)
    if not t:
        return None
    m = _SIGN.search(t)
    if m is not None:
        word = next((g for g in m.groups() if g), None)
        if not t.startswith("translate") and code_for(word or "") is None:
            return None  # "what is that in detail": not a language, not a translation
        return _with_languages("sign", None, word)
    if not re.search(r"translat|interpret", t):
        return None
    if _STOP.search(t):
        return TranslateIntent("stop")
    m = _START.search(t)
    if m is not None:
        words = [g for g in m.groups() if g]
        src_word = m.group(1) or m.group(3)
        tgt_word = m.group(2) or m.group(4)
        if not words:
            return TranslateIntent("start")
        return _with_languages("start", src_word, tgt_word)
    return None


def _with_languages(action: Action, source_word: str | None, target_word: str | None) -> TranslateIntent:
    source = code_for(source_word) if source_word else None
    target = code_for(target_word) if target_word else None
    unknown = next((w for w, c in ((source_word, source), (target_word, target)) if w and c is None), None)
    if action == "start" and source is None and target is not None and source_word is None:
        # "translate to German": the wearer's words become German, so German is the partner's language.
        return TranslateIntent("start", source=target, target=None, unknown_language=unknown)
    return TranslateIntent(action, source=source, target=target, unknown_language=unknown)
