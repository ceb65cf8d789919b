# SPDX-License-Identifier: GPL-3.0-or-later
"""Speech to text with faster-whisper (CTranslate2)."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import SttConfig
from ..errors import ModelError

# Whisper's well-known hallucinations on silence or noise: never treat them as a question.
_NON_SPEECH = re.compile(
    r"^\W*(?:\[[^\]]*\]|\([^)]*\)|you|thank you\.?|thanks for watching!?|bye\.?|\.+|♪+)?\W*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Transcript:
    """What the wearer said."""

    text: str
    language: str
    audio_s: float
    """Seconds of audio transcribed."""
    language_prob: float | None = None
    """How sure Whisper was of ``language`` when it detected it (None: the language was given)."""
    task: str = "transcribe"
    """transcribe (text in the spoken language) or translate (Whisper's own speech-to-English)."""
    detected: tuple[tuple[str, float], ...] = ()
    """Whisper's three likeliest languages with their probabilities, when it detected the language."""

    @property
    def is_empty(self) -> bool:
        return not self.text or bool(_NON_SPEECH.match(self.text))


class WhisperEngine:
    """One loaded Whisper model; :meth:`transcribe` is blocking and thread-confined."""

    def __init__(self, model_dir: Path, cfg: SttConfig) -> None:
        from faster_whisper import WhisperModel

        self.cfg = cfg
        self.model_dir = model_dir
        if not (model_dir / "model.bin").is_file():
            raise ModelError(f"{model_dir} is not a CTranslate2 Whisper folder (no model.bin)")
        try:
            self._model = WhisperModel(
                str(model_dir), device=cfg.device, compute_type=cfg.compute_type,
                cpu_threads=cfg.threads, num_workers=1, local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as err:
            raise ModelError(f"cannot load Whisper model {model_dir}: {str(err).splitlines()[0]}") from None
        self.multilingual = bool(self._model.model.is_multilingual)
        if cfg.device != "cpu":
            # CTranslate2 loads its CUDA libraries lazily: without this, a missing cuBLAS
            # (the PyPI wheel wants CUDA 12's) surfaces at the wearer's first question.
            try:
                self._model.transcribe(np.zeros(16_000, np.float32), language="en" if not self.multilingual
                                       else None, without_timestamps=True)
            except RuntimeError as err:
                raise ModelError(
                    f"Whisper cannot run on --stt-device {cfg.device}: {str(err).splitlines()[0]} "
                    "(use --stt-device cpu, or see docs/gpu.md)"
                ) from None
        if cfg.language not in (None, "en") and not self.multilingual:
            raise ModelError(
                f"Whisper model {model_dir} is English-only; --stt-language {cfg.language} needs a "
                "multilingual model such as --stt-model whisper-base"
            )

    def transcribe(
        self, audio: np.ndarray, *, cancel: threading.Event | None = None, language: str | None = None,
        detect: bool = False, task: str = "transcribe", candidates: tuple[str, ...] | None = None,
        context: str | None = None,
    ) -> Transcript:
        """Transcribe 16 kHz mono float32 audio (at most 30 s are used).

        ``language`` fixes the spoken language for this call; ``detect`` lets a multilingual
        model detect it (ignoring ``[stt] language``), reporting how sure it was in
        ``language_prob``; ``candidates`` limits the choice to those languages (the likeliest
        of them is decoded; ``detected`` still lists the likeliest of all; with two or three
        candidates ``language_prob`` is the share among them).
        ``task="translate"`` is Whisper's own speech-to-English.
        ``context`` is text heard just before (Whisper's previous-text prompt), as a listener knows
        the question it asked: a one-word answer alone ("Paris.") is otherwise easily misheard.
        Decoding is always greedy at temperature 0 without conditioning on earlier text.
        """
        if task not in ("transcribe", "translate"):
            raise ValueError(f"task must be transcribe or translate, not {task!r}")
        audio = np.ascontiguousarray(audio[: 30 * 16_000], dtype=np.float32)
        lang = language or (None if detect else self.cfg.language)
        if not self.multilingual:
            lang, task = "en", "transcribe"
        window_s = self.window_for(len(audio) / 16_000)
        if window_s < 30:
            return self._transcribe_short(audio, window_s, lang, task, candidates, context=context)
        segments, info = self._model.transcribe(
            audio,
            language=lang,
            task=task,
            beam_size=self.cfg.beam_size,
            # One greedy pass, no temperature fallback and no conditioning on earlier
            # text: the fallback made clips take 10-25 s and hallucinate on noise.
            temperature=0.0,
            condition_on_previous_text=False,
            initial_prompt=context,
            without_timestamps=True,
            vad_filter=False,
        )
        parts: list[str] = []
        for seg in segments:  # the lazy generator is drained here, in the worker thread
            if cancel is not None and cancel.is_set():
                break
            if seg.no_speech_prob > 0.6 and seg.avg_logprob < -1.0:
                continue
            parts.append(seg.text.strip())
        detected = tuple((c, float(p)) for c, p in (info.all_language_probs or [])[:3]) if not lang else ()
        return Transcript(" ".join(p for p in parts if p).strip(), info.language, len(audio) / 16_000,
                          None if lang else float(info.language_probability), task, detected)

    def transcribe_clip(self, audio: np.ndarray, *, max_tokens: int = 12) -> str:
        """English text of a second or two of audio (the wake word evaluation's record of what a
        firing heard): a short encoder window and at most ``max_tokens``."""
        audio = np.ascontiguousarray(audio[: 10 * 16_000], dtype=np.float32)
        return self._transcribe_short(audio, self._clip_window(audio), "en", max_tokens=max_tokens).text

    def phrase_scores(self, audio: np.ndarray, forms: Sequence[str]) -> list[float]:
        """How likely each written form is as the transcript of ``audio`` (a second or two):
        the mean log-probability of its tokens, decoded with the text forced.

        The wake word's second stage. One encoder pass and one forced decoder pass per form (no
        generation), on a window of the clip plus 1.5 s rather than ``window_s``: a few tens of
        milliseconds.
        """
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer

        audio = np.ascontiguousarray(audio[: 10 * 16_000], dtype=np.float32)
        model = self._model
        window_s = self._clip_window(audio)
        padded = np.zeros(window_s * 16_000, np.float32)
        padded[: len(audio)] = audio
        features = model.feature_extractor(padded)[:, : window_s * 100]
        encoded = model.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])))
        tokenizer = Tokenizer(model.hf_tokenizer, self.multilingual, task="transcribe", language="en")
        frames = max(1, len(audio) // 160)
        scores = []
        for form in forms:
            tokens = tokenizer.encode(" " + form.strip())
            result = model.model.align(encoded, list(tokenizer.sot_sequence), [tokens], [frames])[0]
            probs = np.maximum(np.asarray(result.text_token_probs, np.float64), 1e-12)
            scores.append(float(np.mean(np.log(probs))))
        return scores

    @staticmethod
    def _clip_window(audio: np.ndarray) -> int:
        # The clip plus 1.5 s: a 3 s window costs a third of a 10 s one, and still ends cleanly.
        return int(np.ceil(len(audio) / 16_000 + 1.5))

    def window_for(self, audio_s: float) -> int:
        """Seconds of encoder window for this much audio: the configured window, or more.

        Whisper pads every input to 30 s and its encoder cost grows with the window;
        CTranslate2 accepts a shorter one (like whisper.cpp's audio_ctx). With at
        least 2 s of padding after the speech the model still ends cleanly; with
        less it tends to repeat itself, so longer utterances get a longer window.
        """
        return int(min(30, max(self.cfg.window_s, np.ceil(audio_s + 2.0))))

    def _transcribe_short(self, audio: np.ndarray, window_s: int, lang: str | None,
                          task: str = "transcribe", candidates: tuple[str, ...] | None = None, *,
                          max_tokens: int | None = None, context: str | None = None) -> Transcript:
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        model = self._model
        frames = window_s * 100
        padded = np.zeros(window_s * 16_000, np.float32)
        padded[: len(audio)] = audio
        features = model.feature_extractor(padded)[:, :frames]
        encoded = model.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])))
        prob = None
        detected: tuple[tuple[str, float], ...] = ()
        if self.multilingual and lang is None:
            ranked = [(token[2:-2], float(p)) for token, p in model.model.detect_language(encoded)[0]]
            detected = tuple(ranked[:3])
            lang, prob = next(((c, p) for c, p in ranked if not candidates or c in candidates), ranked[0])
            if candidates and len(candidates) <= 3:
                # Choosing between the wearer's and the partner's language: how sure, of those two.
                prob = prob / max(1e-9, sum(p for c, p in ranked if c in candidates))
        tokenizer = Tokenizer(model.hf_tokenizer, self.multilingual, task=task, language=lang or "en")
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        if context:  # Whisper's previous-text slot: at most half its 448-token context
            prompt = [tokenizer.sot_prev, *tokenizer.encode(" " + context.strip())[-223:], *prompt]
        # About 3 tokens a second of speech is typical; the cap stops a runaway loop early.
        max_length = len(prompt) + (max_tokens if max_tokens is not None else 16 + int(len(audio) / 16_000 * 8))
        result = model.model.generate(
            encoded, [prompt], beam_size=self.cfg.beam_size, max_length=max_length,
            return_no_speech_prob=True, return_scores=True, suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        )[0]
        tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
        text = tokenizer.decode(tokens).strip()
        # scores[0] is the length-normalised log probability (faster-whisper's avg_logprob).
        if result.no_speech_prob > 0.6 and result.scores[0] < -1.0:
            text = ""
        return Transcript(collapse_repeats(text), tokenizer.language_code, len(audio) / 16_000, prob, task,
                          detected)


def collapse_repeats(text: str) -> str:
    """'What is X? What is X? What' -> 'What is X?': Whisper's loop on short windows."""
    sentences = re.split(r"(?<=[.?!])\s+", text.strip())
    if len(sentences) < 2:
        return text.strip()
    first = sentences[0].lower()
    rest = " ".join(sentences[1:]).lower()
    if rest and (first.startswith(rest.rstrip(".?!")) or rest.startswith(first.rstrip(".?!"))):
        return sentences[0]
    return text.strip()
