# SPDX-License-Identifier: GPL-3.0-or-later
"""Fast tests of the translation logic: intents, output cleaning and checks, sign text, config, captions."""

from __future__ import annotations

import asyncio

import pytest

from glasses_assistant.captions import CaptionEvent, Captions
from glasses_assistant.config import load_config
from glasses_assistant.errors import ConfigError
from glasses_assistant.translate.engines import (
    NOT_TRANSLATED,
    LlmTranslator,
    clean_translation,
    messages_for,
    rejection,
)
from glasses_assistant.translate.intents import TranslateIntent, match_translate_intent
from glasses_assistant.translate.languages import code_for, name
from glasses_assistant.translate.sign import guess_language, looks_like_words, sign_text


@pytest.mark.parametrize("said,expected", [
    ("Translate for me.", TranslateIntent("start")),
    ("Okay, translate for me, please.", TranslateIntent("start")),
    ("Can you translate for us?", TranslateIntent("start")),
    ("Be my interpreter.", TranslateIntent("start")),
    ("Start translation mode.", TranslateIntent("start")),
    ("Translate from Spanish.", TranslateIntent("start", source="es")),
    ("Translate from french to English!", TranslateIntent("start", source="fr", target="en")),
    # "to German": the wearer's words become German, so German is the partner's language.
    ("Translate to German.", TranslateIntent("start", source="de")),
    ("Translate into Italian for me.", TranslateIntent("start", source="it")),
    ("Stop translating.", TranslateIntent("stop")),
    ("Stop translation.", TranslateIntent("stop")),
    ("Please stop the translator.", TranslateIntent("stop")),
    ("Translate this.", TranslateIntent("sign")),
    ("Translate that sign.", TranslateIntent("sign")),
    ("Translate the menu, please.", TranslateIntent("sign")),
    ("What does this sign say in English?", TranslateIntent("sign", target="en")),
    ("Translate this into French.", TranslateIntent("sign", target="fr")),
    ("Translate from Klingon.", TranslateIntent("start", unknown_language="klingon")),
])
def test_translation_requests_are_recognised(said: str, expected: TranslateIntent) -> None:
    assert match_translate_intent(said) == expected


@pytest.mark.parametrize("said", [
    "What does this sign say?",  # a vision "read this", not a translation
    "How do you translate cat into French?",  # a question for the LLM
    "What is that in detail?",
    "Stop.",
    "What is the capital of France?",
    "",
])
def test_other_sentences_are_not_translation_requests(said: str) -> None:
    assert match_translate_intent(said) is None


def test_language_names() -> None:
    assert code_for("Spanish") == "es" and code_for("deutsch") == "de" and code_for("fr") == "fr"
    assert code_for("klingon") is None
    assert name("de") == "German" and name("xx") == "xx"


@pytest.mark.parametrize("raw,clean", [
    ("Where is the train station?", "Where is the train station?"),
    ('"Where is the train station?"', "Where is the train station?"),
    ("Translation: Where is the station?", "Where is the station?"),
    ("Here is the translation: Emergency exit", "Emergency exit"),
    ("English: No smoking.", "No smoking."),
    ("«Où est la gare ?»", "Où est la gare ?"),
    ("How much is a beer?\n\nNote: this is informal.", "How much is a beer?"),
    ("**Emergency exit**", "Emergency exit"),
    ("Good morning (literally: good day)", "Good morning"),
    ("", ""),
])
def test_output_is_cleaned_to_one_plain_line(raw: str, clean: str) -> None:
    assert clean_translation(raw) == clean


@pytest.mark.parametrize("source,out,why", [
    ("Où est la gare ?", "", "empty"),
    ("Où est la gare ?", "Où est la gare ?", "echo"),
    ("Sortie", "I'm sorry, I cannot translate this.", "chat answer"),
    ("Sortie de secours", "The user is asking for a translation of a French sign into English", "chat answer"),
    ("Bonjour", "one more one more one more one more", "repetition"),
    ("Bonjour", "a very long answer that goes on and on about many other things", "too long"),
    ("Où est la gare ?", "Where is the station?", ""),
])
def test_bad_outputs_are_rejected(source: str, out: str, why: str) -> None:
    assert rejection(source, out, "fr", "en") == why


class FakeLlm:
    """Fast unit test only: a chat model that returns a fixed reply."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.messages: list[dict[str, str]] = []
        self.max_tokens: int | None = None

    def stream(self, messages, on_token, *, cancel=None, max_tokens=None):  # type: ignore[no-untyped-def]
        self.messages, self.max_tokens = messages, max_tokens
        on_token(self.reply)
        return self.reply


def test_llm_translator_prompt_budget_and_honest_failure() -> None:
    llm = FakeLlm('Translation: "Where is the station?"')
    t = LlmTranslator(llm, model="fake").translate("Où est la gare ?", "fr", "en")
    assert t.ok and t.text == "Where is the station?" and t.engine == "llm" and t.model == "fake"
    assert "French" in llm.messages[-1]["content"] and "English" in llm.messages[-1]["content"]
    assert llm.max_tokens is not None and llm.max_tokens <= 96
    bad = LlmTranslator(FakeLlm("Sure! The user wants me to translate."), model="fake").translate("Bonjour", "fr", "en")
    assert not bad.ok and bad.text == NOT_TRANSLATED and bad.why == "chat answer"
    assert LlmTranslator(FakeLlm("x"), model="f").translate("  ", "fr", "en").text == NOT_TRANSLATED


def test_unknown_source_language_is_not_named_in_the_prompt() -> None:
    assert "Translate this text into English" in messages_for("Ausgang", "auto", "en")[-1]["content"]


def test_sign_text_keeps_words_and_drops_noise() -> None:
    class Line:
        def __init__(self, text: str, score: float = 0.9) -> None:
            self.text, self.score = text, score

    assert sign_text([Line("SORTIE DE SECOURS"), Line("#%@ 1|l"), Line("Gare", 0.3)]) == "Sortie de secours."
    assert sign_text([Line("~~ @@"), Line("Xqzt vbnm")]) == ""
    assert looks_like_words("Ne pas fumer") and not looks_like_words("| = % #")
    langs = ("en", "fr", "es", "de", "it", "pt", "nl")
    assert guess_language("Sortie de secours", langs) == "fr"
    assert guess_language("Salida de emergencia", langs) == "es"
    assert guess_language("Bitte nicht rauchen", langs) == "de"
    assert guess_language("Taxi", langs) is None  # nothing tells: the translator is not told a language


def test_translate_config_is_checked() -> None:
    cfg = load_config(overrides={"translate": {"voices": "fr=espeak-ng:fr, de=/x/de.onnx", "partner_language": "es"}})
    assert cfg.translate.voice_map == {"fr": "espeak-ng:fr", "de": "/x/de.onnx"}
    assert cfg.translate.language_list[:3] == ("en", "fr", "es")
    for bad, flag in [({"engine": "google"}, "--translate-engine"), ({"partner_language": "xx"},
                      "--translate-partner-language"), ({"voices": "fr"}, "--translate-voices"),
                      ({"languages": "en,français"}, "--translate-languages"), ({"max_tokens": "4"},
                      "--translate-max-tokens")]:
        with pytest.raises(ConfigError, match=flag):
            load_config(overrides={"translate": bad})


def test_translate_voices_may_be_a_toml_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.toml"
    path.write_text('[translate]\nvoices = { fr = "espeak-ng:fr", es = "espeak-ng:es" }\n')
    assert load_config(path).translate.voice_map == {"fr": "espeak-ng:fr", "es": "espeak-ng:es"}


def test_captions_reach_every_listener_and_a_failing_one_does_not_stop_them() -> None:
    got: list[str] = []
    caps = Captions()

    def broken(_e: CaptionEvent) -> None:
        raise RuntimeError("display unplugged")

    async def slow(e: CaptionEvent) -> None:
        got.append("async " + e.text)

    caps.subscribe(broken)
    caps.subscribe(lambda e: got.append(e.line()))
    caps.subscribe(slow)
    asyncio.run(caps.emit(CaptionEvent("translation", "Where is the station?", "en")))
    assert got == ["  -> [en] Where is the station?", "async Where is the station?"]
    assert caps.history[-1].kind == "translation"


@pytest.mark.parametrize("argv,message", [
    (["translate", "Bonjour"], "--from LANG is needed"),
    (["translate", "Bonjour", "--from", "klingon"], "--from 'klingon' is not a language"),
    (["translate"], "give the TEXT to translate or --wav FILE"),
    (["translate", "Bonjour", "--from", "fr", "--translate-engine", "google"], "--translate-engine must be"),
    (["translate-bench", "--langs", "it"], "--langs must be some of fr,es,de"),
    (["translate-bench", "--latency", "-1"], "--latency must be 0 or more"),
])
def test_cli_mistakes_are_one_line_errors(argv: list[str], message: str, capsys) -> None:  # type: ignore[no-untyped-def]
    from glasses_assistant.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_the_test_set_has_twenty_phrases_per_language_in_every_category() -> None:
    from glasses_assistant.benches.translate import load_testset

    phrases = load_testset()
    assert len(phrases) >= 20
    assert {p.category for p in phrases} == {"sign", "direction", "menu", "smalltalk"}
    assert all(set(p.text) == {"en", "fr", "es", "de"} and all(p.text.values()) for p in phrases)
