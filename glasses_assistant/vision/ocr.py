# SPDX-License-Identifier: GPL-3.0-or-later
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
import unicodedata
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

    @property
    def bottom(self) -> float:
        return max(p[1] for p in self.box)

    @property
    def right(self) -> float:
        return max(p[0] for p in self.box)


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
    """What the wearer hears for ``read this``: the text read like a sign, not a dump.

    * noise is dropped: lone letters, strings of digits that say nothing (a barcode, a
      serial number), and a line read again (OCR often finds the same word on a sign
      and its reflection, or on two signs alike);
    * the lines of one sign (:func:`sign_blocks`) are joined in reading order: with a
      space where a phrase runs on ("DOUBLE / PARKING / PROHIBITED" is one phrase broken
      to fit; a paragraph's line that ends mid-sentence), with a comma between phrases
      ("SORTIE DE SECOURS, NE PAS FUMER"); a larger first line is a heading and gets
      its own sentence ("NOTICE. DOUBLE PARKING PROHIBITED AT ALL TIMES.");
    * a sign whose words are all on another sign in view is said once;
    * each sign ends with a full stop, so Piper pauses between signs; very long text is
      cut at a word boundary with a note that there is more.
    """
    blocks = [_block_text(b) for b in sign_blocks([ln for ln in lines if not is_noise(ln.text)])]
    blocks = _without_repeats([b for b in blocks if b])
    if not blocks:
        return "I can't find any text to read."
    text = " ".join(b if b[-1] in ".!?:;," else b + "." for b in blocks)
    if len(text) > max_chars:
        cut = text[:max_chars].rsplit(" ", 1)[0]
        text = cut.rstrip(",;:") + " … and there is more."
    return text


_DIGITS_ONLY = re.compile(r"^[\d\s.,:;/\-–+#*]+$")


def is_noise(text: str) -> bool:
    """A line that says nothing read aloud: empty, only lone letters ("I", "A B"), or only
    digits with a run of 7 or more (a barcode, a serial number) or repeated ones ("1111").

    Short numbers stay: a platform's "2", opening hours "9-18", a price "3.50".
    """
    t = _clean(text)
    tokens = t.split()
    if not tokens or not any(c.isalnum() for c in t):
        return True
    if all(len(tok.strip(".,:;!?'\"()")) <= 1 and not tok.strip(".,:;!?'\"()").isdigit() for tok in tokens):
        return True
    if _DIGITS_ONLY.match(t):
        digits = re.sub(r"\D", "", t)
        longest = max((len(run) for run in re.findall(r"\d+", t)), default=0)
        return longest >= 7 or (len(digits) >= 4 and len(set(digits)) == 1)
    return False


def sign_blocks(lines: list[TextLine]) -> list[list[TextLine]]:
    """Group lines into signs (blocks), in reading order, each block's lines in reading order.

    Two lines belong to one sign when one sits just under the other (a gap of less than
    the taller one's height), they overlap side to side, and their letters are of a like
    size (at most 2x apart); or when they share a row and stand close ("the" beside a
    big "copy centre", letters up to 3x apart).
    """
    n = len(lines)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if _same_sign(lines[i], lines[j]):
                parent[root(i)] = root(j)
    groups: dict[int, list[TextLine]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(lines[i])
    blocks = [reading_order(g) for g in groups.values()]
    # Blocks in reading order too: by row of their first line, then left to right.
    order = reading_order([b[0] for b in blocks])
    return [next(b for b in blocks if b[0] is first) for first in order]


def _same_sign(a: TextLine, b: TextLine) -> bool:
    ha, hb = max(a.height, 1e-4), max(b.height, 1e-4)
    ratio, tall = max(ha, hb) / min(ha, hb), max(ha, hb)
    if min(a.bottom, b.bottom) - max(a.top, b.top) > 0.5 * min(ha, hb):  # side by side on one row
        # Small words beside big ones ("the" before "copy centre") are one sign when close.
        return ratio <= 3.0 and max(a.left, b.left) - min(a.right, b.right) < 1.5 * tall
    upper, lower = (a, b) if a.top <= b.top else (b, a)
    overlap = min(a.right, b.right) - max(a.left, b.left)
    return ratio <= 2.0 and lower.top - upper.bottom < tall and overlap > 0


def _rows(block: list[TextLine]) -> list[list[TextLine]]:
    rows: list[list[TextLine]] = []
    for line in block:  # already in reading order
        if rows and abs(line.top - rows[-1][0].top) < 0.5 * max(rows[-1][0].height, 1e-3):
            rows[-1].append(line)
        else:
            rows.append([line])
    return rows


def _block_text(block: list[TextLine]) -> str:
    rows = [r for r in _rows(block) if any(_clean(ln.text) for ln in r)]
    if not rows:
        return ""
    texts = [" ".join(t for t in (_clean(ln.text) for ln in row) if t) for row in rows]
    heights = [max(ln.height for ln in row) for row in rows]
    if len(rows) > 1:
        rest = sorted(heights[1:])
        if heights[0] >= 1.2 * rest[len(rest) // 2] and texts[0][-1] not in ".!?:;,":
            texts[0] += "."  # a larger first line is a heading: its own sentence
    out = texts[0]
    for before, text in zip(texts, texts[1:], strict=False):
        out += _joint(before, text) + text
    return out


def _joint(before: str, after: str) -> str:
    """What goes between two lines of one sign: a space where the phrase runs on, else a comma."""
    if before[-1] in ".!?:;,":
        return " "
    if before.endswith("-") and after[:1].islower():
        return ""  # a word broken across lines
    if after[:1].islower() or len(before.split()) == 1 or len(after.split()) == 1:
        return " "
    if before.split()[-1].lower() in _RUNS_ON:
        return " "
    return ", "


# A line ending in one of these runs on into the next ("Tickets for / Platform 2").
_RUNS_ON = set("a an and at by de des du for from in into of on or the to with la le les et en pour".split())


def _clean(text: str) -> str:
    """Whitespace squeezed; a word in haphazard case ("pRioRy": a stylised font) in lower case."""
    words = re.sub(r"\s+", " ", text).strip().split(" ")
    return " ".join(w.lower() if _haphazard(w) else w for w in words)


def _haphazard(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    if len(letters) < 3:
        return False
    tail = letters[1:]
    return any(c.isupper() for c in tail) and any(c.islower() for c in tail)


def _words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text.lower())
    return re.findall(r"\w+", "".join(c for c in folded if not unicodedata.combining(c)))


def _without_repeats(blocks: list[str]) -> list[str]:
    """Each sign once: an exact repeat, or a sign whose words all appear in a longer one, is dropped."""
    kept: list[str] = []
    words = [_words(b) for b in blocks]
    for i, b in enumerate(blocks):
        mine = set(words[i])
        if not mine:
            continue
        repeated = any(
            j != i and mine <= set(words[j]) and (len(words[j]) > len(words[i]) or (words[j] == words[i] and j < i))
            for j in range(len(blocks)))
        if not repeated:
            kept.append(b)
    return kept
