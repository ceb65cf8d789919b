# SPDX-License-Identifier: GPL-3.0-or-later
"""Live translation: conversations ("translate for me") and signs ("translate this"), offline.

See :mod:`.mode` for how it runs in the voice loop, :mod:`.engines` for the translators,
:mod:`.bench` for the chrF benchmark.
"""

from ..captions import CaptionEvent, Captions
from .engines import NOT_TRANSLATED, LlmTranslator, Translation, Translator, WhisperTranslator, clean_translation
from .intents import TranslateIntent, match_translate_intent

__all__ = ["NOT_TRANSLATED", "CaptionEvent", "Captions", "LlmTranslator", "TranslateIntent", "Translation",
           "Translator", "WhisperTranslator", "clean_translation", "match_translate_intent"]
