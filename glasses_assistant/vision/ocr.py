"""Reading text ("read this", "what does that sign say") with rapidocr's PP-OCR ONNX models.

The models ship inside the rapidocr wheel, so nothing is fetched. Settings follow
the measurements in design/MODELS.md: rapidocr's defaults upscale the short side
to 736 px and run the angle classifier (1.2-2.5 s a frame on 2 cores); limiting
the text detector's longest side to 640 px and skipping the classifier gives
0.3-0.65 s with the same reading on signs held upright.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError


@dataclass(frozen=True)
class TextLine:
    """One line of text found in a frame; ``box`` is 4 (x, y) corners as fractions of the frame."""

    text: str
    score: float
    box: tuple[tuple[float, float], ...]

    @property
    def top(self) -> float:
        return min(p[1] for p in self.box)

    @property
    def left(self) -> float:
        return min(p[0] for p in self.box)

    @property
    def height(self) -> float:
        ys = [p[1] for p in self.box]
        return max(ys) - min(ys)


class TextReader:
    """rapidocr on onnxruntime; :meth:`read` is blocking and thread-confined."""

    def __init__(self, *, det_side: int = 640, min_score: float = 0.5, threads: int = 2) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as err:
            raise ModelError(f"text reading needs rapidocr (pip install 'rapidocr==3.10.0'): {err}") from None
        self.det_side = det_side
        self.min_score = min_score
        params = {
            "Global.use_cls": False,  # the angle classifier costs ~40 % and signs are upright
            "Global.log_level": "error",
            "Global.text_score": min_score,
            "Global.max_side_len": max(det_side * 2, 1280),
            "Det.limit_side_len": det_side,
            "Det.limit_type": "max",  # cap the longest side (default "min" upscales to 736)
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        try:
            self._engine = RapidOCR(params=params)
        except Exception as err:  # rapidocr raises plain exceptions for missing models
            raise ModelError(f"cannot load the OCR models: {str(err).splitlines()[0]}") from None
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Run once on a small synthetic frame so the first question is not the slow one."""
        import cv2

        img = np.full((120, 400, 3), 255, np.uint8)
        cv2.putText(img, "WARM UP", (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 0), 4)
        self.read(img)

    def read(self, image_bgr: np.ndarray) -> list[TextLine]:
        """Text lines in reading order (top to bottom, then left to right)."""
        if image_bgr.ndim != 3 or image_bgr.size == 0:
            raise ValueError(f"read() needs an HxWx3 BGR image, not shape {image_bgr.shape}")
        h, w = image_bgr.shape[:2]
        with self._lock:
            result = self._engine(image_bgr, use_cls=False)
        txts = getattr(result, "txts", None) or ()
        scores = getattr(result, "scores", None) or ()
        boxes = getattr(result, "boxes", None)
        lines = []
        for i, (text, score) in enumerate(zip(txts, scores, strict=False)):
            text = str(text).strip()
            if not text or float(score) < self.min_score:
                continue
            pts = np.asarray(boxes[i], np.float32) if boxes is not None else np.zeros((4, 2), np.float32)
            box = tuple((round(float(x) / w, 4), round(float(y) / h, 4)) for x, y in pts)
            lines.append(TextLine(text, round(float(score), 4), box))
        return reading_order(lines)


def reading_order(lines: list[TextLine]) -> list[TextLine]:
    """Sort into rows (lines whose tops are within half a line height) then left to right."""
    rows: list[list[TextLine]] = []
    for line in sorted(lines, key=lambda ln: ln.top):
        if rows and abs(line.top - rows[-1][0].top) < 0.5 * max(rows[-1][0].height, 1e-3):
            rows[-1].append(line)
        else:
            rows.append([line])
    return [ln for row in rows for ln in sorted(row, key=lambda ln: ln.left)]


def spoken_text(lines: list[TextLine], *, max_chars: int = 400) -> str:
    """What the wearer hears for ``read this``: the lines joined into sentences.

    Lines that end without punctuation get a full stop so Piper pauses between a
    sign's lines ("PLATFORM 2. Trains to Lyon.") instead of running them together;
    very long text is cut at a word boundary with a note that there is more.
    """
    if not lines:
        return "I can't find any text to read."
    parts = []
    for ln in lines:
        t = re.sub(r"\s+", " ", ln.text).strip()
        if t:
            parts.append(t if t[-1] in ".!?:;," else t + ".")
    text = " ".join(parts)
    if len(text) > max_chars:
        cut = text[:max_chars].rsplit(" ", 1)[0]
        text = cut.rstrip(",;:") + " … and there is more."
    return text
