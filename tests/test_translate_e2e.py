# SPDX-License-Identifier: GPL-3.0-or-later
"""Live translation through the real loop: real models (Silero VAD, Whisper base and tiny.en,
Qwen2.5-Coder-1.5B, Piper, piper-tts's espeak-ng voices, rapidocr) and synthesised speech.

The partner speaks through piper-tts's espeak-ng voices (the only French, Spanish and German
voices available offline), the wearer through the Piper voice; what the wearer hears is
transcribed again by tiny.en and must carry the sentence's meaning.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import converse, words

from glasses_assistant.audio.io import SAMPLE_RATE, WavSink, resample
from glasses_assistant.camera import FileCamera
from glasses_assistant.engines.stt import Transcript
from glasses_assistant.engines.voices import open_voice
from glasses_assistant.pipeline import Assistant
from glasses_assistant.trace import TurnTrace

pytestmark = pytest.mark.models

DARKNET = Path("/usr/share/darknet/data")
sys.path.insert(0, str(Path(__file__).parent / "vision"))  # vision_helpers.render_sign


@pytest.fixture(scope="module")
def partner(assistant: Assistant):  # type: ignore[no-untyped-def]
    """(language, text) -> 16 kHz speech in piper-tts's espeak-ng voice for that language."""

    def _say(lang: str, text: str) -> np.ndarray:
        voice = open_voice(f"espeak-ng:{lang}", assistant.catalogue, assistant.config.tts)
        return resample(voice.synthesize(text), voice.sample_rate, SAMPLE_RATE)

    return _say


@pytest.fixture
def translating(assistant: Assistant):  # type: ignore[no-untyped-def]
    """The session's assistant; translation is always off again afterwards."""
    yield assistant
    assistant.stop_translation()


def heard(assistant: Assistant, audio: np.ndarray, rate: int) -> list[str]:
    """What the wearer heard, transcribed again by the English Whisper."""
    assert assistant.stt is not None
    return words(assistant.stt.transcribe(resample(audio, rate, SAMPLE_RATE)).text)


CASES = [
    # (partner language, fixed by "translate from X"?, sentence, English words that must be heard)
    ("fr", False, "Bonjour monsieur, je voudrais un café et un croissant, s'il vous plaît.", {"coffee", "croissant"}),
    ("es", False, "Buenos días. ¿Dónde está la estación de tren, por favor?", {"station", "train"}),
    # The wearer names the partner's language ("translate from German"): detection then only
    # chooses between German and English.
    ("de", True, "Ich hätte gern eine Tasse Kaffee, bitte.", {"coffee", "cup"}),
]


@pytest.mark.parametrize("lang,fixed,sentence,keys", CASES, ids=[c[0] for c in CASES])
def test_partner_speech_comes_out_as_english_speech(translating: Assistant, partner, speak, tmp_path: Path,
                                                    lang: str, fixed: bool, sentence: str, keys: set[str]) -> None:
    command = {"fr": "Translate for me.", "es": "Translate for me.", "de": "Translate from German."}[lang]
    traces, audio, rate = converse(translating, [speak(command), partner(lang, sentence)], tmp_path)
    assert len(traces) == 2, [t.transcript for t in traces]
    start, turn = traces
    assert start.translation is not None and start.translation["mode"] == "start"
    assert "translating" in words(start.reply)
    assert turn.translation is not None and turn.translation["outcome"] == "translated", turn.translation
    assert turn.translation["source"] == lang and turn.translation["target"] == "en"
    # One loaded copy of the 1.5B answers and translates (a second copy would add 1.2 GB of RSS).
    assert translating.engines.translator is not None and translating.engines.translator.llm is translating.llm
    assert translating.engines.mt_worker == "llm"
    # The translation is spoken in the wearer's ear: transcribe the turn's audio again.
    said = set(heard(translating, audio, rate))  # the reply file: the confirmation, then the translation
    assert keys & said, (turn.reply, said)
    assert turn.first_audio is not None and turn.speech_end is not None and turn.first_audio > turn.speech_end


def test_wearer_reply_goes_back_in_the_partners_language_and_stop_ends_it(
    translating: Assistant, partner, speak, tmp_path: Path
) -> None:
    clips = [speak("Translate for me."), partner("es", "Buenos días. ¿Dónde está la estación de tren, por favor?"),
             speak("The station is on the left."), speak("Stop translating."), speak("What is the capital of France?")]
    events = []
    translating.captions.subscribe(events.append)
    try:
        traces, _audio, _rate = converse(translating, clips, tmp_path)
    finally:
        translating.captions.listeners.remove(events.append)
    assert len(traces) == 5, [t.transcript for t in traces]
    reply = traces[2]
    assert reply.translation is not None and reply.translation["source"] == "en", reply.translation
    assert reply.translation["target"] == "es" and reply.translation["outcome"] == "translated"
    assert "estación" in reply.reply.lower() or "izquierda" in reply.reply.lower(), reply.reply
    assert traces[3].translation is not None and traces[3].translation["mode"] == "stop"
    assert translating.translation is None
    # Back to the assistant: the chat LLM answers, no translation.
    assert traces[4].translation is None and "paris" in words(traces[4].reply)
    kinds = [(e.kind, e.language) for e in events]
    assert ("transcript", "es") in kinds and ("translation", "en") in kinds and ("translation", "es") in kinds


def test_unsupported_language_and_silence_get_honest_answers(translating: Assistant, partner, tmp_path: Path) -> None:
    asyncio.run(translating.start_translation(None, None))
    silence = np.zeros(SAMPLE_RATE * 2, np.float32)
    japanese = partner("ja", "駅はどこですか")
    traces, _audio, _rate = converse(translating, [silence, japanese], tmp_path)
    assert len(traces) == 1, [t.transcript for t in traces]  # silence is no turn at all
    t = traces[0]
    assert t.translation is not None and t.translation["outcome"] == "unsupported", t.translation
    assert t.reply == "Sorry, I can't translate Japanese."


def test_a_french_sign_is_read_out_in_english(assistant: Assistant, speak, tmp_path: Path) -> None:
    from vision_helpers import render_sign

    if assistant.vision is None:
        assistant._load_vision()
    sign = tmp_path / "sign.jpg"
    cv2.imwrite(str(sign), render_sign(DARKNET / "horses.jpg", ["SORTIE DE SECOURS", "NE PAS FUMER"]))
    traces, audio, rate = converse(assistant, [speak("Translate this sign.")], tmp_path, camera=FileCamera(sign))
    t = traces[0]
    assert t.translation is not None and t.translation["mode"] == "sign", t.translation
    assert t.translation["outcome"] == "translated" and t.translation["source"] == "fr", t.translation
    for said in (words(t.reply), heard(assistant, audio, rate)):  # the text, and what the wearer heard
        assert "exit" in said and any(w.startswith("smok") for w in said), (t.reply, said)


@pytest.mark.parametrize("lines", [[], ["#%@ ~|= *%#", "~~ @@ ||"]], ids=["no-text", "noise"])
def test_a_sign_without_words_is_said_plainly(assistant: Assistant, tmp_path: Path, lines: list[str]) -> None:
    """A real photo with no writing, and a sign of symbols: no translation is made up."""
    from vision_helpers import render_sign

    if assistant.vision is None:
        assistant._load_vision()
    image = tmp_path / "view.jpg"
    cv2.imwrite(str(image), render_sign(DARKNET / "horses.jpg", lines) if lines
                else cv2.imread(str(DARKNET / "horses.jpg")))
    trace = asyncio.run(assistant.respond_text("Translate this.", WavSink(tmp_path / "r.wav"),
                                               camera=FileCamera(image)))
    assert trace.translation is not None and trace.translation["outcome"] == "no-text", trace.translation
    assert trace.reply == "I can't see any text to translate."


@pytest.mark.parametrize("heard,expected,outcome", [
    # Mixed languages: Whisper is unsure which one it heard.
    (Transcript("Bonjour, guten Tag, good morning.", "fr", 2.0, 0.31, detected=(("fr", 0.31), ("de", 0.29))),
     "I didn't catch which language that was.", "unsure"),
    # The wearer speaks first and no partner language is known yet.
    (Transcript("Where is the station?", "en", 2.0, 0.97, detected=(("en", 0.97),)),
     "I don't know the other language yet. Let them speak first, or say, for example, translate to Spanish.",
     "no-partner"),
])
def test_turns_that_cannot_be_translated_get_a_short_honest_answer(
    translating: Assistant, tmp_path: Path, heard: Transcript, expected: str, outcome: str
) -> None:
    asyncio.run(translating.start_translation(None, None))
    trace = TurnTrace(turn=1)
    asyncio.run(translating.respond_translation_turn(heard, None, WavSink(tmp_path / "r.wav"), trace))
    assert trace.translation is not None and trace.translation["outcome"] == outcome
    assert trace.reply == expected and trace.first_audio is not None


def test_typed_text_while_translating_is_said_in_the_partners_language(translating: Assistant,
                                                                       tmp_path: Path) -> None:
    """`run --translate es --text ...`: the wearer's typed words, translated for the partner."""
    assert asyncio.run(translating.start_translation("es", None)) == \
        "Translating between Spanish and English. Go ahead."
    trace = asyncio.run(translating.respond_text("Where is the train station?", WavSink(tmp_path / "r.wav")))
    assert trace.translation is not None and trace.translation["target"] == "es", trace.translation
    assert "estación" in trace.reply.lower() and trace.first_audio is not None, trace.reply
