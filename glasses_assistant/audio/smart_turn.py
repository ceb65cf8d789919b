# SPDX-License-Identifier: GPL-3.0-or-later
"""Smart Turn v3.2, the acoustic end-of-turn model, run directly with onnxruntime.

From the last 8 s of a speaker's audio the model gives the probability that they have finished
their turn: it hears what the words cannot say (a falling pitch and a stretched last syllable,
against a voice left hanging mid-phrase). The model (Daily's, BSD-2-Clause) ships inside the
``pipecat-ai`` wheel, which the catalogue fetches with ``--no-deps`` and takes the ONNX out of;
pipecat itself never enters the environment, so the features are computed here.

The features are Whisper's log-mel spectrogram as Hugging Face's ``WhisperFeatureExtractor``
computes it with ``chunk_length=8`` and ``do_normalize=True`` (what the model was trained on):
the waveform is normalised to zero mean and unit variance, then a centred 400-point STFT with a
periodic Hann window every 160 samples, the power through 80 Slaney mel filters (0-8 kHz),
``log10`` floored at 1e-10, clamped to 8 (in log10) below its maximum and mapped by
``(x + 4) / 4``. ``tests/test_smart_turn.py`` checks them against values computed by pipecat's
own implementation.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import ModelError

log = logging.getLogger(__name__)

RATE = 16_000
WINDOW_S = 8
"""The model hears the last 8 s: older audio is dropped, shorter audio zero-padded in front."""
_N_FFT, _HOP, _N_MELS = 400, 160, 80


def _mel_filters() -> np.ndarray:
    """Slaney-scale, area-normalised triangular filters, shape (201 frequency bins, 80 mels)."""

    def to_mel(hz: np.ndarray) -> np.ndarray:
        # Linear below 1 kHz, logarithmic above (Slaney's Auditory Toolbox, librosa's default).
        mel = 3.0 * hz / 200.0
        high = hz >= 1000.0
        mel[high] = 15.0 + np.log(hz[high] / 1000.0) * (27.0 / np.log(6.4))
        return mel

    def to_hz(mel: np.ndarray) -> np.ndarray:
        hz = 200.0 * mel / 3.0
        high = mel >= 15.0
        hz[high] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[high] - 15.0))
        return hz

    edges_mel = np.linspace(to_mel(np.array([0.0]))[0], to_mel(np.array([RATE / 2.0]))[0], _N_MELS + 2)
    edges = to_hz(edges_mel)
    bins = np.linspace(0, RATE // 2, _N_FFT // 2 + 1)
    slopes = edges[None, :] - bins[:, None]
    widths = np.diff(edges)
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (edges[2:] - edges[:-2]))[None, :]


_FILTERS = _mel_filters()
_HANN = np.hanning(_N_FFT + 1)[:-1]  # periodic, as torch.hann_window


def fit_window(audio: np.ndarray) -> np.ndarray:
    """The last :data:`WINDOW_S` seconds of ``audio``, zero-padded in front when shorter."""
    n = RATE * WINDOW_S
    x = np.asarray(audio, np.float32).reshape(-1)
    if x.size >= n:
        return x[-n:]
    return np.concatenate([np.zeros(n - x.size, np.float32), x])


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Whisper-style log-mel features of exactly 8 s of 16 kHz audio: float32, shape (80, 800).

    ``audio`` shorter or longer than 8 s is padded or cut at the end (call :func:`fit_window`
    first to keep the end of an utterance, as the model wants).
    """
    n = RATE * WINDOW_S
    x = np.asarray(audio, np.float32).reshape(-1)[:n]
    if x.size < n:
        x = np.concatenate([x, np.zeros(n - x.size, np.float32)])
    # Normalised in float32 before the spectrogram, as the reference does.
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), _N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP]
    power = np.abs(np.fft.rfft(frames * _HANN, axis=-1)) ** 2  # (801 frames, 201 bins)
    mel = np.log10(np.maximum(1e-10, power @ _FILTERS)).T[:, :-1]  # the last frame is dropped
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)


class SmartTurn:
    """The end-of-turn model: :meth:`probability` of "finished" for the audio of a turn so far.

    Blocking and thread-confined like every engine (about 32 ms a call on one core here, 23 ms on
    two); called once per pause, never per chunk.
    """

    def __init__(self, model_path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Its pool's threads do not spin after a call: Whisper and the chat LLM need the cores then.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 4
        try:
            self._session = ort.InferenceSession(str(model_path), sess_options=opts,
                                                 providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ModelError(f"cannot load end-of-turn model {model_path}: {str(err).splitlines()[0]}") from None
        inputs = self._session.get_inputs()
        if [i.name for i in inputs] != ["input_features"]:
            raise ModelError(f"{model_path} is not a Smart Turn v3 model (inputs {[i.name for i in inputs]})")

    def probability(self, audio: np.ndarray) -> float:
        """Probability (0..1) that the speaker of ``audio`` (16 kHz, ending now) has finished."""
        features = log_mel(fit_window(audio))[None, :, :]
        out = self._session.run(None, {"input_features": features})[0]
        return float(np.asarray(out).reshape(-1)[0])
