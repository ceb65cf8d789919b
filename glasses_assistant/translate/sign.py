# SPDX-License-Identifier: GPL-3.0-or-later
"""Sign text: keep what OCR read with confidence and that looks like words; guess its language.

Why a word-list heuristic for the language: the text is short and printed, Whisper hears
audio not text, and asking the LLM costs a second pass. Common function words and letters
with accents tell the supported languages apart on most signs and menus; when nothing is
telling, the translator is asked to translate "this text" without naming its language
(the 1.5B Qwen handles that), which is the honest fallback rather than a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

NO_TEXT = "I can't see any text to translate."

_VOWELS = set("aeiouyàáâãäåæèéêëìíîïòóôõöøùúûüÿœ")
_WORDS: dict[str, set[str]] = {
    "en": set("the and of to in is for on with at by from exit entrance open closed no please only this you your "
              "not are station street menu today welcome toilets push pull".split()),
    "fr": set("le la les des du de et est pour sur avec dans une un au aux ne pas sortie entrée fermé ouvert "
              "interdit merci gare rue défense toilettes bienvenue poussez tirez vous votre sauf".split()),
    "es": set("el la los las del de y es para por con en una un al no salida entrada cerrado abierto prohibido "
              "gracias estación calle baños bienvenidos empuje tire usted su".split()),
    "de": set("der die das den dem des und ist für auf mit im in ein eine nicht ausgang eingang geschlossen "
              "geöffnet verboten danke bahnhof straße strasse bitte willkommen drücken ziehen sie ihr zum zur".split()),
    "it": set("il lo la gli le del della di e è per con in una un non uscita entrata chiuso aperto vietato grazie "
              "stazione via benvenuti spingere tirare".split()),
    "pt": set("o a os as do da de e é para com em uma um não saída entrada fechado aberto proibido obrigado "
              "estação rua bem-vindo empurre puxe".split()),
    "nl": set("de het een en is voor op met in niet uitgang ingang gesloten open verboden dank station straat "
              "welkom duwen trekken u uw".split()),
}
_LETTERS: dict[str, str] = {"fr": "çèêàùœ", "es": "ñ¿¡á", "de": "ßäöü", "pt": "ãõ", "it": "ì"}


def sign_text(lines: Sequence[object], *, min_score: float = 0.6) -> str:
    """The readable text of the OCR lines (objects with ``text`` and ``score``), noise dropped; "" if none."""
    kept = []
    for ln in lines:
        text = re.sub(r"\s+", " ", str(getattr(ln, "text", ""))).strip()
        if float(getattr(ln, "score", 1.0)) < min_score or not looks_like_words(text):
            continue
        if sum(c.isupper() for c in text) > sum(c.islower() for c in text):
            # Signs shout; the translator reads "Sortie de secours" better than "SORTIE DE SECOURS".
            text = text[0].upper() + text[1:].lower()
        kept.append(text if text[-1] in ".!?:;," else text + ".")
    return " ".join(kept)


def looks_like_words(text: str) -> bool:
    """At least half the tokens are words (letters with a vowel) and at least one has two letters."""
    tokens = re.findall(r"\S+", text)
    if not tokens:
        return False
    wordy = [t for t in tokens if _is_word(t)]
    return len(wordy) * 2 >= len(tokens) and any(len(re.sub(r"\W", "", w)) >= 2 for w in wordy)


def _is_word(token: str) -> bool:
    core = re.sub(r"^[\W_]+|[\W_]+$", "", token.lower())
    if not core or not all(c.isalpha() or c in "-'’" for c in core):
        return False
    if len(core) == 1:
        return core in "aàyoeéu"
    return any(c in _VOWELS for c in core)


def guess_language(text: str, languages: Sequence[str]) -> str | None:
    """The likeliest of ``languages`` for a short printed text, or None when nothing tells them apart."""
    words = re.findall(r"[\w'-]+", text.lower())
    if not words:
        return None
    scores: dict[str, float] = {}
    for lang in languages:
        vocab = _WORDS.get(lang, set())
        score = sum(1.0 for w in words if w in vocab)
        score += sum(1.5 for ch in _LETTERS.get(lang, "") if ch in text.lower())
        scores[lang] = score
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    if not ranked or ranked[0][1] < 1.0 or (len(ranked) > 1 and ranked[0][1] - ranked[1][1] < 1.0):
        return None
    return ranked[0][0]
