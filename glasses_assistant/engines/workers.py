# SPDX-License-Identifier: GPL-3.0-or-later
"""The loaded models and the worker threads that call them.

Each model is loaded once and kept warm. Every model call runs in a worker thread of its
own (one per engine, so calls to one model never overlap and the event loop never blocks);
:meth:`Engines.call` is the one way the asynchronous side reaches a model. The translation
models (a multilingual Whisper and a translating LLM) are loaded on first use, beside the
others; the chat LLM serves translation too when it is the same model.

Nothing here knows about turns, skills or speaking: see docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..audio.smart_turn import SmartTurn
from ..audio.vad import SileroVad
from ..audio.wake_verify import tuning
from ..audio.wakeword import WakeWordDetector
from ..catalog import Catalogue
from ..config import Config, ListenConfig, RemoteConfig
from ..errors import ModelError
from ..translate.engines import LlmTranslator, WhisperTranslator
from ..translate.factory import open_translator
from ..vision.service import VisionService
from .llm import LlamaEngine
from .remote import RemoteLlm
from .stt import WhisperEngine
from .tts import PiperEngine
from .voices import Voice, open_voice

log = logging.getLogger(__name__)

T = TypeVar("T")


def current_rss_mb() -> float | None:
    """This process's resident memory now (Linux /proc), in MB; None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


WORKERS = ("vad", "turn", "stt", "llm", "tts", "vision", "memory", "mt")
"""One thread each. ``mt`` runs a translating LLM of its own; ``memory`` the SQLite writes; ``turn`` the
end-of-turn model (once a pause, beside the speculative transcription, never delaying the VAD)."""


class Engines:
    """The models of one assistant, each with its worker; loaded by :meth:`load`."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.vad: SileroVad | None = None
        self.turn: SmartTurn | None = None
        """The acoustic end-of-turn model; None when the policy needs none, or it failed to load or verify
        (the listener then ends turns by the transcript and silence)."""
        self.stt: WhisperEngine | None = None
        self.llm: LlamaEngine | None = None
        self.tts: PiperEngine | None = None
        self.vision: VisionService | None = None
        self.remote: RemoteLlm | None = None
        """The server's LLM when ``[remote] policy`` is not local; None means nothing is ever sent."""
        self.model_ids: dict[str, str] = {}
        self.model_paths: dict[str, Path] = {}
        self.load_s: dict[str, float] = {}
        self.rss_mb: dict[str, float] = {}
        """Resident memory each stage's models added at load (MB), for the benchmark's memory figures."""
        self._voices: dict[str, Voice] = {}
        self._wake: WakeWordDetector | None = None
        self.mt_stt: WhisperEngine | None = None
        """The multilingual Whisper translation listens with (the wearer's own when it is multilingual)."""
        self.translator: LlmTranslator | None = None
        self.mt_worker = "mt"
        """The worker the translator runs on: its own, or the chat LLM's when it is the chat LLM."""
        self._pools = {name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ga-{name}") for name in WORKERS}

    # ------------------------------------------------------------------ workers
    async def call(self, worker: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on ``worker``'s thread and wait for it."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pools[worker], lambda: fn(*args, **kwargs))

    def start(self, worker: str, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(*args)`` on ``worker`` now and return its future (await it later, or not at all)."""
        return asyncio.get_running_loop().run_in_executor(self._pools[worker], fn, *args)

    def submit(self, worker: str, fn: Callable[[], T]) -> Future[T]:
        """Queue ``fn`` on ``worker`` without waiting (the turn log's writes)."""
        return self._pools[worker].submit(fn)

    def close(self) -> None:
        self._pools["memory"].shutdown(wait=True)  # the turn log's last writes land first
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ loading
    def load(self, config: Config, progress: Callable[[str], None] = lambda _m: None, *,
             camera: bool = False) -> dict[str, float]:
        """Verify and load every model, then warm each one (blocking; seconds per stage).

        The vision models load when ``[vision] enabled`` is on, or auto and ``camera``.
        """
        steps: list[tuple[str, Callable[[Config], None]]] = [
            ("vad", self._load_vad), ("turn", self._load_turn), ("stt", self._load_stt), ("llm", self._load_llm),
            ("tts", self._load_tts),
        ]
        enabled = config.vision.enabled
        if enabled == "on" or (enabled == "auto" and camera):
            steps.append(("vision", self.load_vision))
        for name, step in steps:
            t0, rss0 = time.perf_counter(), current_rss_mb()
            step(config)
            self.load_s[name] = round(time.perf_counter() - t0, 3)
            if rss0 is not None and (rss1 := current_rss_mb()) is not None:
                self.rss_mb[name] = round(rss1 - rss0, 1)
            if name in self.model_ids:  # the end-of-turn model may be off or missing
                progress(f"loaded {name:<3} {self.model_ids[name]} in {self.load_s[name]:.2f} s")
        return dict(self.load_s)

    def _resolve(self, role: str, wanted: str | None) -> Path:
        path, self.model_ids[role] = self.catalogue.resolve(role, wanted)
        self.model_paths[role] = path
        return path

    def _load_vad(self, config: Config) -> None:
        self.vad = SileroVad(self._resolve("vad", config.vad.model))
        self.vad(np.zeros(512, np.float32))
        self.vad.reset()

    def _load_turn(self, config: Config) -> None:
        """Smart Turn, when the end-of-turn policy uses it. A model that is missing or fails its
        check is not fatal: one warning, and turns end by the transcript and silence as before."""
        if config.vad.end_policy not in ("combined", "smart-turn"):
            return
        try:
            # Two threads: asked at a pause's first silent chunk, it has the cores to itself (listen.py).
            self.turn = SmartTurn(self._resolve("turn", config.vad.turn_model), threads=2)
            self.turn.probability(np.zeros(16_000, np.float32))  # first run initialises onnxruntime
        except ModelError as err:
            self.turn = None
            self.model_ids.pop("turn", None)
            log.warning("end-of-turn model unavailable, ending turns by transcript and silence: %s", err)

    def _load_stt(self, config: Config) -> None:
        self.stt = WhisperEngine(self._resolve("stt", config.stt.model), config.stt)
        self.stt.transcribe(np.zeros(16_000, np.float32))  # first call initialises CTranslate2

    def _load_llm(self, config: Config) -> None:
        path = self._resolve("llm", config.llm.wanted)
        draft = None
        if config.llm.draft_model:
            draft, self.model_ids["llm-draft"] = self.catalogue.resolve("llm", config.llm.draft_model)
        self.llm = LlamaEngine(path, config.llm, name=self.model_ids["llm"], draft_path=draft)
        self.llm.check_prompt_fits(config.llm.system_prompt)
        self.llm.warm([{"role": "system", "content": config.llm.system_prompt},
                       {"role": "user", "content": "Hello."}])

    def _load_tts(self, config: Config) -> None:
        self.tts = PiperEngine(self._resolve("tts", config.tts.voice), config.tts)
        self.tts.synthesize("Ready.")

    def load_vision(self, config: Config) -> None:
        """The detector and the text reader (also on demand, for a scenario that shows images)."""
        vcfg = config.vision
        self.vision = VisionService.load(
            self.catalogue, model=vcfg.model, threads=vcfg.threads, ocr=vcfg.ocr, photo_dir=vcfg.photo_dir,
            score_threshold=vcfg.threshold, sure_threshold=vcfg.sure,
        )
        detector = self.vision.detector
        self.model_ids["vision"] = (getattr(detector, "model_id", None) or "detector") + (
            " + rapidocr" if vcfg.ocr else "")

    def configure_remote(self, cfg: RemoteConfig, *, temperature: float) -> None:
        """The server's LLM for these ``[remote]`` settings (nothing connects until a question is routed)."""
        self.remote = None if cfg.policy == "local" or not cfg.url else RemoteLlm(cfg, temperature=temperature)

    def voice(self, spec: str | None, config: Config) -> Voice:
        """The voice ``spec`` names (see :mod:`.voices`), loaded once; None is the default voice.

        Blocking (a Piper voice takes a few tenths of a second to load): call it on the tts worker.
        """
        assert self.tts is not None, "call load() first"
        if spec is None or spec == self.model_ids.get("tts"):
            return self.tts
        if spec not in self._voices:
            self._voices[spec] = open_voice(spec, self.catalogue, config.tts)
        return self._voices[spec]

    def wake_detector(self, lcfg: ListenConfig) -> WakeWordDetector:
        """The wake word detector of ``[listen] wake_word`` at its ``wake_sensitivity`` cutoff (or
        ``wake_threshold`` when set); loaded once, on first use."""
        threshold = lcfg.wake_threshold or tuning(lcfg.wake_word, lcfg.wake_sensitivity).cutoff
        if self._wake is not None and self._wake.wake_word == lcfg.wake_word:
            self._wake.threshold = threshold
        else:
            t0 = time.perf_counter()
            self._wake = WakeWordDetector(lcfg.wake_word, threshold=threshold)
            self.load_s["wake"] = round(time.perf_counter() - t0, 3)
            self.model_ids["wake"] = f"microwakeword {lcfg.wake_word}"
        return self._wake

    # ------------------------------------------------------------------ translation models
    def load_translation(self, config: Config, progress: Callable[[str], None] = lambda _m: None) -> None:
        """Load the multilingual Whisper and the translator (blocking; done once, on first use)."""
        tcfg = config.translate
        if self.mt_stt is None:
            t0 = time.perf_counter()
            if self.stt is not None and getattr(self.stt, "multilingual", False):
                self.mt_stt = self.stt  # the wearer already runs a multilingual Whisper: share it
                self.model_ids["translate-stt"] = self.model_ids.get("stt", "stt")
            else:
                path, self.model_ids["translate-stt"] = self.catalogue.resolve("stt", tcfg.stt_model)
                engine = WhisperEngine(path, config.stt)
                if not engine.multilingual:
                    raise ModelError(f"[translate] stt_model {tcfg.stt_model!r} is English-only: name a "
                                     "multilingual Whisper such as whisper-base")
                engine.transcribe(np.zeros(16_000, np.float32), language="en")
                self.mt_stt = engine
            self.load_s["translate-stt"] = round(time.perf_counter() - t0, 3)
            progress(f"loaded translation stt {self.model_ids['translate-stt']} in "
                     f"{self.load_s['translate-stt']:.2f} s")
        if self.translator is None:
            t0 = time.perf_counter()
            self.translator = open_translator(config, self.catalogue, chat=self.llm,
                                              chat_id=self.model_ids.get("llm", "chat"))
            self.mt_worker = "llm" if self.translator.llm is self.llm else "mt"
            self.model_ids["translate"] = self.translator.model
            self.load_s["translate"] = round(time.perf_counter() - t0, 3)
            progress(f"loaded translator {self.translator.model} in {self.load_s['translate']:.2f} s")

    def speech_translator(self, config: Config) -> WhisperTranslator | None:
        """Whisper's own speech-to-English when ``[translate] engine = whisper``, else None."""
        if config.translate.engine != "whisper" or self.mt_stt is None:
            return None
        return WhisperTranslator(self.mt_stt, model=self.model_ids.get("translate-stt", "whisper"))
