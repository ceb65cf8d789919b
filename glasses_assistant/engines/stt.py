"""Speech to text with faster-whisper (CTranslate2)."""

from __future__ import annotations

import re
import threading
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
        if cfg.language not in (None, "en") and not self.multilingual:
            raise ModelError(
                f"Whisper model {model_dir} is English-only; --stt-language {cfg.language} needs a "
                "multilingual model such as --stt-model whisper-base"
            )

    def transcribe(
        self, audio: np.ndarray, *, cancel: threading.Event | None = None, language: str | None = None
    ) -> Transcript:
        """Transcribe 16 kHz mono float32 audio (at most 30 s are used)."""
        audio = np.ascontiguousarray(audio[: 30 * 16_000], dtype=np.float32)
        lang = language or self.cfg.language
        if not self.multilingual:
            lang = "en"
        segments, info = self._model.transcribe(
            audio,
            language=lang,
            beam_size=self.cfg.beam_size,
            # One greedy pass, no temperature fallback and no conditioning on earlier
            # text: the fallback made clips take 10-25 s and hallucinate on noise.
            temperature=0.0,
            condition_on_previous_text=False,
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
        return Transcript(" ".join(p for p in parts if p).strip(), info.language, len(audio) / 16_000)
