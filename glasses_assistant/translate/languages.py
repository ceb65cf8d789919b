# SPDX-License-Identifier: GPL-3.0-or-later
"""Language codes, their English names, and the names a wearer says ("translate from Spanish")."""

from __future__ import annotations

NAMES: dict[str, str] = {
    "en": "English", "fr": "French", "es": "Spanish", "de": "German", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "pl": "Polish", "sv": "Swedish", "da": "Danish", "no": "Norwegian", "fi": "Finnish",
    "cs": "Czech", "ro": "Romanian", "hu": "Hungarian", "el": "Greek", "tr": "Turkish", "ru": "Russian",
    "uk": "Ukrainian", "ar": "Arabic", "he": "Hebrew", "hi": "Hindi", "ja": "Japanese", "ko": "Korean",
    "zh": "Chinese", "vi": "Vietnamese", "th": "Thai", "id": "Indonesian", "ca": "Catalan",
}
"""Whisper's language codes for the languages a traveller is likely to meet."""

_SPOKEN: dict[str, str] = {
    **{name.lower(): code for code, name in NAMES.items()},
    "castilian": "es", "mandarin": "zh", "farsi": "fa", "persian": "fa", "brazilian": "pt",
    "portugese": "pt", "deutsch": "de", "francais": "fr", "espanol": "es", "italiano": "it",
}


def name(code: str) -> str:
    """English name of a language code ("fr" -> "French"); the code itself if unknown."""
    return NAMES.get(code.lower(), code)


def code_for(word: str) -> str | None:
    """The code for a spoken language name or a code ("Spanish", "spanish", "es"), else None."""
    w = word.strip().lower()
    if w in _SPOKEN:
        return _SPOKEN[w]
    if w in NAMES:
        return w
    return None
