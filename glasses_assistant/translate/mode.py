"""Live translation inside the voice loop: conversation mode and sign translation.

:class:`TranslationMixin` is part of :class:`~glasses_assistant.pipeline.Assistant`.

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
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AssistantError, ModelError
from .captions import CaptionEvent, Captions
from .engines import NOT_TRANSLATED, LlmTranslator, Translation, Translator, WhisperTranslator
from .intents import TranslateIntent, match_translate_intent
from .languages import name
from .sign import NO_TEXT, guess_language, sign_text

if TYPE_CHECKING:
    from ..audio.io import AudioSink
    from ..camera import Camera
    from ..engines.stt import Transcript, WhisperEngine
    from ..trace import TurnTrace

log = logging.getLogger("glasses_assistant")

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


class TranslationMixin:
    """The translation side of the assistant (see the module docstring)."""

    # Provided by Assistant.
    config: Any
    catalogue: Any
    stt: Any
    llm: Any
    tts: Any
    vision: Any
    model_ids: dict[str, str]
    model_paths: dict[str, Any]
    stats: Any
    _pools: dict[str, ThreadPoolExecutor]
    _call: Callable[..., Any]
    _say: Callable[..., Any]
    voice: Callable[..., Any]
    _turn_counter: int

    translation: TranslationState | None = None
    captions: Captions
    _mt_stt: WhisperEngine | None = None
    _translator: LlmTranslator | None = None
    _mt_pool: str = "mt"
    """The worker the translator runs on: its own, or the chat LLM's when it is the chat LLM."""

    def _init_translation(self) -> None:
        self.translation = None
        self.captions = Captions()
        self._mt_stt = None
        self._translator = None
        self._pools.setdefault("mt", ThreadPoolExecutor(max_workers=1, thread_name_prefix="ga-mt"))

    # ------------------------------------------------------------------ models
    @property
    def translating(self) -> bool:
        return self.translation is not None

    def load_translation(self, progress: Callable[[str], None] = lambda _m: None) -> None:
        """Load the multilingual Whisper and the translator (blocking; done once, on first use)."""
        from ..engines.stt import WhisperEngine
        from ..pipeline import resolve_model

        tcfg = self.config.translate
        if self._mt_stt is None:
            t0 = time.perf_counter()
            if self.stt is not None and getattr(self.stt, "multilingual", False):
                self._mt_stt = self.stt  # the wearer already runs a multilingual Whisper: share it
                self.model_ids["translate-stt"] = self.model_ids.get("stt", "stt")
            else:
                path, self.model_ids["translate-stt"] = resolve_model(self.catalogue, "stt", tcfg.stt_model)
                engine = WhisperEngine(path, self.config.stt)
                if not engine.multilingual:
                    raise ModelError(f"[translate] stt_model {tcfg.stt_model!r} is English-only: name a "
                                     "multilingual Whisper such as whisper-base")
                engine.transcribe(np.zeros(16_000, np.float32), language="en")
                self._mt_stt = engine
            self.stats.load_s["translate-stt"] = round(time.perf_counter() - t0, 3)
            progress(f"loaded translation stt {self.model_ids['translate-stt']} in "
                     f"{self.stats.load_s['translate-stt']:.2f} s")
        if self._translator is None:
            from .factory import open_translator

            t0 = time.perf_counter()
            self._translator = open_translator(self.config, self.catalogue, chat=self.llm,
                                               chat_id=self.model_ids.get("llm", "chat"))
            self._mt_pool = "llm" if self._translator.llm is self.llm else "mt"
            self.model_ids["translate"] = self._translator.model
            self.stats.load_s["translate"] = round(time.perf_counter() - t0, 3)
            progress(f"loaded translator {self._translator.model} in {self.stats.load_s['translate']:.2f} s")

    def translator(self) -> Translator:
        """The text translator (loaded on first use)."""
        if self._translator is None:
            self.load_translation()
        assert self._translator is not None
        return self._translator

    def speech_translator(self) -> WhisperTranslator | None:
        """Whisper's own speech-to-English when ``[translate] engine = whisper``, else None."""
        if self.config.translate.engine != "whisper" or self._mt_stt is None:
            return None
        return WhisperTranslator(self._mt_stt, model=self.model_ids.get("translate-stt", "whisper"))

    def voice_for(self, language: str) -> str | None:
        """The voice spec a language is spoken in (None: the default Piper voice)."""
        voices = self.config.translate.voice_map
        if language in voices:
            return voices[language]
        default_lang = (getattr(self.tts, "language", "") or "en").split("-")[0].split("_")[0].lower()
        if language == default_lang or (language == "en" and default_lang.startswith("en")):
            return None
        return f"espeak-ng:{language}"

    # ------------------------------------------------------------------ mode
    async def start_translation(self, source: str | None = None, target: str | None = None) -> str:
        """Start conversation mode; returns the spoken confirmation (or why it cannot start).

        ``source`` is the partner's language (None: detected each turn), ``target`` the language
        the partner's words are translated into (None: ``[translate] wearer_language``).
        """
        tcfg = self.config.translate
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
            await self._call("stt", self.load_translation)
        except AssistantError as err:
            log.error("translation cannot start: %s", err)
            return "Sorry, translation is not available: " + str(err).split(";")[0] + "."
        self.translation = TranslationState(wearer, partner, partner is not None, time.monotonic())
        if partner is None:
            return f"Translating into {name(wearer)}. Go ahead."
        return f"Translating between {name(partner)} and {name(wearer)}. Go ahead."

    def stop_translation(self) -> str:
        """End conversation mode; returns the spoken confirmation."""
        if self.translation is None:
            return NOT_TRANSLATING
        self.translation = None
        return STOPPED

    def active_transcribe(self, audio: np.ndarray, cancel: Any = None) -> Transcript:
        """The transcription the loop runs now: multilingual with detection while translating (stt worker)."""
        state = self.translation
        if state is None or self._mt_stt is None:
            return self.stt.transcribe(audio, cancel=cancel)
        candidates = ((state.wearer, state.partner) if state.fixed and state.partner
                      else self.config.translate.language_list)
        return self._mt_stt.transcribe(audio, cancel=cancel, detect=True, candidates=candidates)

    # ------------------------------------------------------------------ turns
    async def respond_translate_intent(self, intent: TranslateIntent, text: str, sink: AudioSink,
                                       trace: TurnTrace, camera: Camera | None) -> TurnTrace:
        """A spoken (or typed) translation command: start, stop, or translate the sign in view."""
        trace.translation = {"mode": intent.action, "source": intent.source, "target": intent.target}
        if intent.unknown_language:
            spoken = f"Sorry, I don't know the language {intent.unknown_language}."
        elif intent.action == "stop":
            spoken = self.stop_translation()
        elif intent.action == "start":
            spoken = await self.start_translation(intent.source, intent.target)
        else:
            return await self.respond_sign(text, sink, trace, camera, target=intent.target)
        await self._speak_text(spoken, sink, trace)
        return trace

    async def respond_translation_turn(self, transcript: Transcript, audio: np.ndarray | None,
                                       sink: AudioSink, trace: TurnTrace, camera: Camera | None = None) -> TurnTrace:
        """One turn of conversation mode (the transcript is from the multilingual Whisper)."""
        state = self.translation
        assert state is not None
        tcfg = self.config.translate
        text, lang = transcript.text.strip(), transcript.language
        top = transcript.detected[0] if transcript.detected else (lang, transcript.language_prob or 1.0)
        info: dict[str, Any] = {"mode": "conversation", "heard": text, "language": lang,
                                "language_prob": transcript.language_prob, "detected": list(transcript.detected)}
        trace.translation = info
        if lang == state.wearer:
            intent = match_translate_intent(text)
            if intent is not None and intent.action in ("stop", "start", "sign"):
                return await self.respond_translate_intent(intent, text, sink, trace, camera)
        # Bad input first: a language not translated, or speech Whisper could not place. When the wearer
        # named the partner's language, only a near-certain other language overrides what they said.
        sure = max(0.9, tcfg.min_language_prob) if state.fixed else tcfg.min_language_prob
        if top[0] not in tcfg.language_list and top[1] >= sure:
            info["outcome"] = "unsupported"
            await self._speak_text(unsupported(top[0]), sink, trace)
            return trace
        if lang not in tcfg.language_list or (transcript.language_prob is not None
                                              and transcript.language_prob < tcfg.min_language_prob):
            info["outcome"] = "unsure"
            await self._speak_text(WHICH_LANGUAGE, sink, trace)
            return trace
        await self.captions.emit(CaptionEvent("transcript", text, lang, turn=trace.turn))
        if lang == state.wearer:
            if state.partner is None:
                info["outcome"] = "no-partner"
                await self._speak_text(NO_PARTNER, sink, trace)
                return trace
            source, target = lang, state.partner
        else:
            if not state.fixed:
                state.partner = lang  # the wearer's reply goes back into the language last heard
            source, target = lang, state.wearer
        translation = await self._translate_speech_or_text(text, audio, source, target)
        info.update(outcome="translated" if translation.ok else "not-translated", source=source, target=target,
                    translation=translation.text, engine=translation.engine, model=translation.model,
                    why=translation.why, timings=translation.timings)
        trace.reply = translation.text
        if translation.ok:
            await self.captions.emit(CaptionEvent("translation", translation.text, target, turn=trace.turn))
        voice = self.voice_for(target) if translation.ok else None
        await self._speak_text(translation.text, sink, trace, voice=voice)
        return trace

    async def _translate_speech_or_text(self, text: str, audio: np.ndarray | None, source: str,
                                        target: str) -> Translation:
        speech = self.speech_translator()
        started = time.monotonic()
        if speech is not None and audio is not None and target == "en":
            result: Translation = await self._call("stt", speech.translate_speech, audio, source)
        else:
            result = await self._call(self._mt_pool, self.translator().translate, text, source, target)
        result.timings.setdefault("wall_s", round(time.monotonic() - started, 4))
        return result

    async def respond_sign(self, question: str, sink: AudioSink, trace: TurnTrace, camera: Camera | None,
                           *, target: str | None = None) -> TurnTrace:
        """Translate the text in view: capture now, read it (OCR), drop noise, translate, speak."""
        from ..vision.frames import NO_CAMERA, problem

        tcfg = self.config.translate
        target = (target or (self.translation.wearer if self.translation else tcfg.wearer_language)).lower()
        info: dict[str, Any] = {"mode": "sign", "target": target}
        trace.translation = info
        if target not in tcfg.language_list:
            await self._speak_text(unsupported(target), sink, trace)
            return trace
        started = time.monotonic()
        frame = await camera.capture() if camera is not None and camera.has_camera else None
        trace.span("camera", "capture", started, time.monotonic())
        if frame is None or self.vision is None or getattr(self.vision, "reader", None) is None:
            info["outcome"] = "no-camera"
            spoken = NO_CAMERA.spoken if frame is None else "Reading text is not enabled on this device."
            await self._speak_text(spoken, sink, trace)
            return trace
        if frame.problem is not None:
            info["outcome"] = frame.problem
            await self._speak_text(problem(frame.problem, str(frame.metadata.get("error", ""))).spoken, sink, trace)
            return trace
        started = time.monotonic()
        answer = await self._call("vision", self.vision.answer, "read", frame.jpeg, question=question,
                                  metadata=frame.metadata)
        trace.span("vision", "read", started, time.monotonic())
        info["read"] = [(ln.text, ln.score) for ln in answer.lines]
        if answer.problem is not None:
            info["outcome"] = answer.problem.code
            await self._speak_text(answer.spoken, sink, trace)
            return trace
        text = sign_text(answer.lines)
        info["text"] = text
        if not text:
            info["outcome"] = "no-text"
            await self._speak_text(NO_TEXT, sink, trace)
            return trace
        source = guess_language(text, tcfg.language_list)
        info["source"] = source
        if source == target:
            info["outcome"] = "already"
            await self._speak_text(f"It's already in {name(target)}: {text}", sink, trace, voice=self.voice_for(target))
            return trace
        await self.captions.emit(CaptionEvent("transcript", text, source or "", turn=trace.turn))
        try:
            await self._call("stt", self.load_translation)
        except AssistantError as err:
            info["outcome"] = "unavailable"
            await self._speak_text("Sorry, translation is not available: " + str(err).split(";")[0] + ".",
                                   sink, trace)
            return trace
        started = time.monotonic()
        translation: Translation = await self._call(self._mt_pool, self.translator().translate, text, source or "auto",
                                                    target)
        trace.span("llm", "translate the sign", started, time.monotonic())
        info.update(outcome="translated" if translation.ok else "not-translated", translation=translation.text,
                    engine=translation.engine, model=translation.model, why=translation.why,
                    timings=translation.timings)
        if not translation.ok:
            await self._speak_text(NOT_TRANSLATED, sink, trace)
            return trace
        await self.captions.emit(CaptionEvent("translation", translation.text, target, turn=trace.turn))
        voice = self.voice_for(target)
        lead = "The sign says:" if target == "en" else None
        if lead and voice is None:
            await self._speak_text(f"{lead} {translation.text}", sink, trace)
        else:
            await self._speak_text(translation.text, sink, trace, voice=voice)
        return trace

    async def _speak_text(self, text: str, sink: AudioSink, trace: TurnTrace, *, voice: str | None = None) -> None:
        """Say a complete text phrase by phrase (the first phrase plays while the next is made).

        A voice that cannot be loaded (no espeak-ng voice for the language) falls back to the
        default voice rather than leaving the wearer with silence.
        """
        if voice is not None:
            try:
                await self._call("tts", self.voice, voice)
            except AssistantError as err:
                log.warning("voice %s: %s; the default voice speaks", voice, err)
                voice = None
        await self.say_whole(text, sink, trace, voice=voice)
        trace.reply = trace.reply or " ".join(trace.phrases) or text

    async def translate_text(self, text: str, source: str, target: str) -> Translation:
        """Translate typed text (``translate TEXT --from fr``); loads the translator on first use."""
        await self._call("stt", self.load_translation)
        return await self._call(self._mt_pool, self.translator().translate, text, source, target)

