# SPDX-License-Identifier: GPL-3.0-or-later
"""Live translation inside the voice loop: conversation mode and sign translation.

:class:`TranslationSkill` is a skill like the others (:mod:`..skill`): it returns a reply and never speaks
for itself. Its models are loaded by :meth:`~..engines.workers.Engines.load_translation`.

Models. The assistant's own Whisper is tiny.en (English only, fastest) and its chat LLM is the
135M SmolLM2, which cannot translate. Translation needs a multilingual Whisper
(``[translate] stt_model``, whisper-base) and a translating LLM (``[translate] model``, the
1.5B Qwen). Both are loaded on first use, *beside* the others rather than swapped in: the
wearer who never translates pays nothing (no load time, no memory), and when translation stops
English turns go back to tiny.en at once (base is about three times slower per turn). They
stay loaded afterwards, so the second "translate for me" starts at once. whisper-base runs on
the ``stt`` worker (one Whisper call at a time on the two cores), the translating LLM on a
worker of its own (``mt``).

Conversation mode. Each turn is transcribed by whisper-base with the language detected (among
the wearer's and the partner's when the partner's is fixed). The partner's speech is
translated into the wearer's language and spoken in the wearer's voice (the default sink: the
wearer's ear); the wearer's speech is translated into the partner's language and spoken in that
language's voice (the virtual glasses have one speaker, so both go to it, one after the
other). Captions of both go to the terminal and to a display. "Stop translating" said in the
wearer's language ends the mode. Bad input gets a short honest answer: an unsupported language,
a language Whisper is unsure of (mixed languages), an untranslatable reply; silence gets nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..captions import CaptionEvent
from ..engines.stt import Transcript
from ..errors import AssistantError
from ..skill import Reply, SkillContext, Turn
from ..vision.frames import NO_CAMERA, problem
from .engines import NOT_TRANSLATED, Translation, Translator
from .intents import TranslateIntent, match_translate_intent
from .languages import name
from .sign import NO_TEXT, guess_language, sign_text

log = logging.getLogger(__name__)

STOPPED = "Translation stopped."
NOT_TRANSLATING = "I wasn't translating."
WHICH_LANGUAGE = "I didn't catch which language that was."
NO_PARTNER = "I don't know the other language yet. Let them speak first, or say, for example, translate to Spanish."


def unsupported(code: str) -> str:
    return f"Sorry, I can't translate {name(code)}."


@dataclass
class TranslationState:
    """Conversation mode while it is on."""

    wearer: str
    partner: str | None
    """The partner's language; None: detected turn by turn."""
    fixed: bool
    """The partner's language was named ("translate from Spanish"): detection chooses between the two."""
    started: float


class TranslationSkill:
    """Conversation mode and sign translation (see the module docstring)."""

    name = "translation"

    def __init__(self, ctx: SkillContext) -> None:
        self.ctx = ctx
        self.state: TranslationState | None = None

    @property
    def translating(self) -> bool:
        return self.state is not None

    # ------------------------------------------------------------------ models
    async def load(self) -> None:
        """The translation models, loaded on first use (on the stt worker: one Whisper call at a time)."""
        await self.ctx.call("stt", self.ctx.engines.load_translation, self.ctx.config)

    def translator(self) -> Translator:
        """The text translator (loaded on first use; blocking)."""
        engines = self.ctx.engines
        if engines.translator is None:
            engines.load_translation(self.ctx.config)
        assert engines.translator is not None
        return engines.translator

    def voice_for(self, language: str) -> str | None:
        """The voice spec a language is spoken in (None: the default Piper voice)."""
        voices = self.ctx.config.translate.voice_map
        if language in voices:
            return voices[language]
        tts = self.ctx.engines.tts
        default_lang = (getattr(tts, "language", "") or "en").split("-")[0].split("_")[0].lower()
        if language == default_lang or (language == "en" and default_lang.startswith("en")):
            return None
        return f"espeak-ng:{language}"

    # ------------------------------------------------------------------ mode
    async def start(self, source: str | None = None, target: str | None = None) -> str:
        """Start conversation mode; returns the spoken confirmation (or why it cannot start).

        ``source`` is the partner's language (None: detected each turn), ``target`` the language
        the partner's words are translated into (None: ``[translate] wearer_language``).
        """
        tcfg = self.ctx.config.translate
        langs = tcfg.language_list
        wearer = (target or tcfg.wearer_language).lower()
        partner = (source or tcfg.partner_language)
        partner = partner.lower() if partner else None
        for code in (wearer, partner):
            if code is not None and code not in langs:
                return unsupported(code)
        if partner == wearer:
            return f"You and your partner both speak {name(wearer)}: there is nothing to translate."
        try:
            await self.load()
        except AssistantError as err:
            log.error("translation cannot start: %s", err)
            return "Sorry, translation is not available: " + str(err).split(";")[0] + "."
        self.state = TranslationState(wearer, partner, partner is not None, time.monotonic())
        if partner is None:
            return f"Translating into {name(wearer)}. Go ahead."
        return f"Translating between {name(partner)} and {name(wearer)}. Go ahead."

    def stop(self) -> str:
        """End conversation mode; returns the spoken confirmation."""
        if self.state is None:
            return NOT_TRANSLATING
        self.state = None
        return STOPPED

    def transcribe(self, audio: np.ndarray, cancel: Any = None) -> Transcript:
        """The transcription the loop runs now: multilingual with detection while translating (stt worker)."""
        engines = self.ctx.engines
        state = self.state
        assert engines.stt is not None
        if state is None or engines.mt_stt is None:
            return engines.stt.transcribe(audio, cancel=cancel)
        candidates = ((state.wearer, state.partner) if state.fixed and state.partner
                      else self.ctx.config.translate.language_list)
        return engines.mt_stt.transcribe(audio, cancel=cancel, detect=True, candidates=candidates)

    # ------------------------------------------------------------------ the two routes
    async def reply(self, turn: Turn) -> Reply | None:
        """Conversation mode: while it is on, every spoken turn is translated (the wearer's own
        commands included, see :meth:`conversation_turn`); typed text is the wearer's, unless it
        is a translation command."""
        if self.state is None:
            return None
        if turn.transcript is None:
            if match_translate_intent(turn.text) is not None:
                return None  # a typed command: the intent route answers it
            wearer = self.state.wearer
            transcript = Transcript(turn.text, wearer, 0.0, 1.0, detected=((wearer, 1.0),))
            return await self.conversation_turn(transcript, None, turn)
        transcript = turn.transcript
        if transcript.language_prob is None and turn.audio is not None:
            # Transcribed before translation started (by the English-only Whisper): again, multilingual.
            transcript = await self.ctx.call("stt", self.transcribe, turn.audio, turn.cancel)
            turn.trace.transcript, turn.trace.language = transcript.text, transcript.language
        return await self.conversation_turn(transcript, turn.audio, turn)

    def claims(self, text: str) -> bool:
        """Conversation mode is on: every turn is translated."""
        return self.state is not None

    def claims_intent(self, text: str) -> bool:
        """Translation's own phrases ("translate for me", "translate this", "stop translating")."""
        return match_translate_intent(text) is not None

    async def reply_to_intent(self, turn: Turn) -> Reply | None:
        """Translation's own phrases: start, stop, or translate the sign in view."""
        intent = match_translate_intent(turn.text)
        if intent is None:
            return None
        return await self.answer_intent(intent, turn)

    async def answer_intent(self, intent: TranslateIntent, turn: Turn) -> Reply:
        turn.trace.translation = {"mode": intent.action, "source": intent.source, "target": intent.target}
        if intent.unknown_language:
            spoken = f"Sorry, I don't know the language {intent.unknown_language}."
        elif intent.action == "stop":
            spoken = self.stop()
        elif intent.action == "start":
            spoken = await self.start(intent.source, intent.target)
        else:
            return await self.sign(turn, target=intent.target)
        return _say(spoken)

    # ------------------------------------------------------------------ turns
    async def conversation_turn(self, transcript: Transcript, audio: np.ndarray | None, turn: Turn) -> Reply:
        """One turn of conversation mode (the transcript is from the multilingual Whisper)."""
        state = self.state
        assert state is not None
        trace = turn.trace
        tcfg = self.ctx.config.translate
        text, lang = transcript.text.strip(), transcript.language
        top = transcript.detected[0] if transcript.detected else (lang, transcript.language_prob or 1.0)
        info: dict[str, Any] = {"mode": "conversation", "heard": text, "language": lang,
                                "language_prob": transcript.language_prob, "detected": list(transcript.detected)}
        trace.translation = info
        if lang == state.wearer:
            intent = match_translate_intent(text)
            if intent is not None and intent.action in ("stop", "start", "sign"):
                return await self.answer_intent(intent, turn)
        # Bad input first: a language not translated, or speech Whisper could not place. When the wearer
        # named the partner's language, only a near-certain other language overrides what they said.
        sure = max(0.9, tcfg.min_language_prob) if state.fixed else tcfg.min_language_prob
        if top[0] not in tcfg.language_list and top[1] >= sure:
            info["outcome"] = "unsupported"
            return _say(unsupported(top[0]))
        if lang not in tcfg.language_list or (transcript.language_prob is not None
                                              and transcript.language_prob < tcfg.min_language_prob):
            info["outcome"] = "unsure"
            return _say(WHICH_LANGUAGE)
        await self.ctx.captions.emit(CaptionEvent("transcript", text, lang, turn=trace.turn))
        if lang == state.wearer:
            if state.partner is None:
                info["outcome"] = "no-partner"
                return _say(NO_PARTNER)
            source, target = lang, state.partner
        else:
            if not state.fixed:
                state.partner = lang  # the wearer's reply goes back into the language last heard
            source, target = lang, state.wearer
        translation = await self._translate_speech_or_text(text, audio, source, target, turn.cancel)
        info.update(outcome="translated" if translation.ok else "not-translated", source=source, target=target,
                    translation=translation.text, engine=translation.engine, model=translation.model,
                    why=translation.why, timings=translation.timings)
        trace.reply = translation.text
        if translation.ok:
            await self.ctx.captions.emit(CaptionEvent("translation", translation.text, target, turn=trace.turn))
        return _say(translation.text, voice=self.voice_for(target) if translation.ok else None)

    async def _translate_speech_or_text(self, text: str, audio: np.ndarray | None, source: str,
                                        target: str, cancel: threading.Event | None = None) -> Translation:
        engines = self.ctx.engines
        speech = engines.speech_translator(self.ctx.config)
        started = time.monotonic()
        if speech is not None and audio is not None and target == "en":
            result: Translation = await self.ctx.call("stt", speech.translate_speech, audio, source)
        else:
            result = await self.ctx.call(engines.mt_worker, self.translator().translate, text, source, target,
                                         cancel=cancel)
        result.timings.setdefault("wall_s", round(time.monotonic() - started, 4))
        return result

    async def sign(self, turn: Turn, *, target: str | None = None) -> Reply:
        """Translate the text in view: capture now, read it (OCR), drop noise, translate."""
        trace, camera, vision = turn.trace, turn.camera, self.ctx.engines.vision
        tcfg = self.ctx.config.translate
        target = (target or (self.state.wearer if self.state else tcfg.wearer_language)).lower()
        info: dict[str, Any] = {"mode": "sign", "target": target}
        trace.translation = info
        if target not in tcfg.language_list:
            return _say(unsupported(target))
        started = time.monotonic()
        frame = await camera.capture() if camera is not None and camera.has_camera else None
        trace.span("camera", "capture", started, time.monotonic())
        if frame is None or vision is None or getattr(vision, "reader", None) is None:
            info["outcome"] = "no-camera"
            return _say(NO_CAMERA.spoken if frame is None else "Reading text is not enabled on this device.")
        if frame.problem is not None:
            info["outcome"] = frame.problem
            return _say(problem(frame.problem, str(frame.metadata.get("error", ""))).spoken)
        started = time.monotonic()
        answer = await self.ctx.call("vision", vision.answer, "read", frame.jpeg, question=turn.text,
                                     metadata=frame.metadata)
        trace.span("vision", "read", started, time.monotonic())
        info["read"] = [(ln.text, ln.score) for ln in answer.lines]
        if answer.problem is not None:
            info["outcome"] = answer.problem.code
            return _say(answer.spoken)
        text = sign_text(answer.lines)
        info["text"] = text
        if not text:
            info["outcome"] = "no-text"
            return _say(NO_TEXT)
        source = guess_language(text, tcfg.language_list)
        info["source"] = source
        if source == target:
            info["outcome"] = "already"
            return _say(f"It's already in {name(target)}: {text}", voice=self.voice_for(target))
        await self.ctx.captions.emit(CaptionEvent("transcript", text, source or "", turn=trace.turn))
        try:
            await self.load()
        except AssistantError as err:
            info["outcome"] = "unavailable"
            return _say("Sorry, translation is not available: " + str(err).split(";")[0] + ".")
        started = time.monotonic()
        translation: Translation = await self.ctx.call(
            self.ctx.engines.mt_worker, self.translator().translate, text, source or "auto", target,
            cancel=turn.cancel)
        trace.span("llm", "translate the sign", started, time.monotonic())
        info.update(outcome="translated" if translation.ok else "not-translated", translation=translation.text,
                    engine=translation.engine, model=translation.model, why=translation.why,
                    timings=translation.timings)
        if not translation.ok:
            return _say(NOT_TRANSLATED)
        await self.ctx.captions.emit(CaptionEvent("translation", translation.text, target, turn=trace.turn))
        voice = self.voice_for(target)
        lead = "The sign says:" if target == "en" else None
        if lead and voice is None:
            return _say(f"{lead} {translation.text}")
        return _say(translation.text, voice=voice)

    async def translate_text(self, text: str, source: str, target: str) -> Translation:
        """Translate typed text (``translate TEXT --from fr``); loads the translator on first use."""
        await self.load()
        return await self.ctx.call(self.ctx.engines.mt_worker, self.translator().translate, text, source, target)


class TranslateIntentRoute:
    """Translation's own phrases ("translate for me", "translate this"), as a route of its own."""

    name = "translate-intent"

    def __init__(self, skill: TranslationSkill) -> None:
        self.skill = skill

    async def reply(self, turn: Turn) -> Reply | None:
        return await self.skill.reply_to_intent(turn)

    def claims(self, text: str) -> bool:
        return self.skill.claims_intent(text)


def _say(text: str, *, voice: str | None = None) -> Reply:
    """Translation's replies are said but are not chat history (the chat LLM never sees them)."""
    return Reply.say(text, voice=voice, history=False)
