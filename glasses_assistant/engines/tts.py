# SPDX-License-Identifier: GPL-3.0-or-later
"""Text to speech with Piper, on an onnxruntime session whose threads we choose."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import TtsConfig
from ..errors import ModelError


class PiperEngine:
    """One loaded Piper voice; :meth:`synthesize` is blocking and thread-confined."""

    def __init__(self, voice_path: Path, cfg: TtsConfig) -> None:
        import onnxruntime as ort
        from piper import PiperVoice
        from piper.config import PiperConfig, SynthesisConfig

        config_path = Path(f"{voice_path}.json")
        if not voice_path.is_file():
            raise ModelError(f"Piper voice {voice_path} does not exist")
        try:
            config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        except OSError:
            raise ModelError(f"Piper voice {voice_path} has no {config_path.name} beside it") from None
        except (ValueError, KeyError) as err:
            raise ModelError(f"Piper voice config {config_path} is invalid: {err}") from None
        opts = ort.SessionOptions()
        # PiperVoice.load() takes no thread count; we build the session ourselves so
        # the voice does not take both cores away from the LLM.
        opts.intra_op_num_threads = cfg.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if cfg.device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ModelError("--tts-device cuda needs onnxruntime-gpu with a working CUDA (this onnxruntime "
                                 f"offers {', '.join(ort.get_available_providers())}); see docs/gpu.md")
            providers.insert(0, "CUDAExecutionProvider")
        try:
            session = ort.InferenceSession(str(voice_path), sess_options=opts, providers=providers)
        except Exception as err:  # onnxruntime's own exception types
            raise ModelError(f"cannot load Piper voice {voice_path}: {str(err).splitlines()[0]}") from None
        self._voice = PiperVoice(session=session, config=config)
        self._syn = SynthesisConfig(length_scale=cfg.length_scale, volume=cfg.volume, normalize_audio=True,
                                    noise_scale=cfg.noise_scale, noise_w_scale=cfg.noise_w)
        self.sample_rate = int(config.sample_rate)
        self.language = config.espeak_voice

    def variant(self, *, length_scale: float | None = None, noise_scale: float | None = None,
                noise_w: float | None = None) -> PiperEngine:
        """The same loaded voice at another pace or variation (one onnxruntime session, not two)."""
        import copy

        from piper.config import SynthesisConfig

        other = copy.copy(self)
        syn = self._syn
        other._syn = SynthesisConfig(
            length_scale=syn.length_scale if length_scale is None else length_scale, volume=syn.volume,
            normalize_audio=syn.normalize_audio, noise_scale=syn.noise_scale if noise_scale is None else noise_scale,
            noise_w_scale=syn.noise_w_scale if noise_w is None else noise_w)
        return other

    def synthesize(self, text: str) -> np.ndarray:
        """Speak ``text``; mono float32 at :attr:`sample_rate` (empty if nothing to say)."""
        chunks = [c.audio_float_array for c in self._voice.synthesize(text, syn_config=self._syn)]
        if not chunks:
            return np.zeros(0, np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)
