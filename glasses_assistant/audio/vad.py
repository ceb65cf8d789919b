# SPDX-License-Identifier: GPL-3.0-or-later
"""Silero VAD v6 (the ONNX model inside faster-whisper) run directly with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelError
from .io import BLOCK

_CONTEXT = 64  # Silero v6 sees the last 64 samples of the previous window too


class SileroVad:
    """Streaming speech probability for 512-sample (32 ms) windows at 16 kHz.

    Stateful: the recurrent state and the 64-sample context carry over from one
    window to the next; call :meth:`reset` between unrelated streams.
    """

    def __init__(self, model_path: str | Path) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # ~0.25 ms a window: one thread, no contention
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ModelError(f"cannot load VAD model {model_path}: {str(err).splitlines()[0]}") from None
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(_CONTEXT, np.float32)

    def __call__(self, window: np.ndarray) -> float:
        """Probability that this 32 ms window holds speech."""
        if window.shape != (BLOCK,):
            raise ValueError(f"Silero VAD takes {BLOCK} samples, got {window.shape}")
        x = np.concatenate([self._context, window.astype(np.float32, copy=False)])[None, :]
        prob, self._h, self._c = self._session.run(None, {"input": x, "h": self._h, "c": self._c})
        self._context = window[-_CONTEXT:].astype(np.float32, copy=True)
        return float(prob.reshape(-1)[0])
