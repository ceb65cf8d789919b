# SPDX-License-Identifier: GPL-3.0-or-later
"""Object detection on onnxruntime: NanoDet / CenterNet (built from npm) or a user's YOLO ONNX.

Every model sits behind one :class:`Detector` whose :meth:`Detector.detect` takes a
BGR frame (OpenCV's layout, what :func:`decode_frame` returns) and gives
:class:`Detection` records with boxes normalised to 0..1 of the frame, after score
thresholding and non-maximum suppression. The model-specific parts (input layout,
how raw outputs become boxes) live in small adapters chosen from the graph's
input/output shapes, so a user's YOLO-style ONNX works through the same interface.

Synchronous and thread-confined like the other engines: load once, call from one
worker thread.
"""

from __future__ import annotations

import ast
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelError
from .calibration import confidence_for
from .labels import COCO_LABELS

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import Catalogue

ROLE = "vision"
KINDS = ("auto", "nanodet", "centernet", "yolo", "xyxy")


@dataclass(frozen=True)
class Detection:
    """One object found in a frame.

    ``box_xyxy`` is (x1, y1, x2, y2) as fractions of the frame's width and height,
    so it stays meaningful whatever size the frame was decoded at. ``sure`` is whether
    the score reaches the detector's calibrated "say it as fact" band
    (:mod:`.calibration`); a detection that is not sure is only ever spoken as a guess.
    """

    label: str
    score: float
    box_xyxy: tuple[float, float, float, float]
    class_id: int = -1
    sure: bool = True

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box_xyxy
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box_xyxy
        return (x1 + x2) / 2, (y1 + y2) / 2


# --------------------------------------------------------------------------- NMS
def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes ``a`` [N,4] and ``b`` [M,4]."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS; indices of the kept boxes, best first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        ious = iou_matrix(boxes[i : i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _rounded_box(xyxy: np.ndarray) -> tuple[float, float, float, float]:
    """One (x1, y1, x2, y2) row as plain floats, rounded to 4 places."""
    x1, y1, x2, y2 = (round(float(v), 4) for v in xyxy)
    return x1, y1, x2, y2


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Per-class NMS (boxes of different classes never suppress each other)."""
    if boxes.size == 0:
        return np.zeros(0, np.int64)
    # The usual trick: shift each class's boxes far apart, then one NMS pass.
    offset = classes.astype(np.float64)[:, None] * (float(np.abs(boxes).max()) + 1.0)
    return nms(boxes + offset, scores, iou_threshold)


# ---------------------------------------------------------------------- adapters
class _Adapter:
    """Turns a frame into the model's input and the model's outputs into boxes."""

    kind = "?"

    def __init__(self, input_name: str, input_shape: list, output_names: list[str]) -> None:
        self.input_name = input_name
        self.input_shape = input_shape
        self.output_names = output_names

    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, dict]:
        raise NotImplementedError

    def postprocess(self, outputs: list[np.ndarray], meta: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes normalised xyxy [N,4], scores [N], class ids [N]) before thresholds and NMS."""
        raise NotImplementedError


def _resize(image_bgr: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    h, w = image_bgr.shape[:2]
    # INTER_AREA when shrinking avoids aliasing that costs small objects; linear otherwise.
    interp = cv2.INTER_AREA if (w > width or h > height) else cv2.INTER_LINEAR
    return cv2.resize(image_bgr, (width, height), interpolation=interp)


class _NanoDet(_Adapter):
    """NanoDet-m 416 (GFL head): per-stride class scores (sigmoid applied in the graph) and
    box distances as 4 sides x 11 bins (softmax over bins, expected value x stride).

    The decode follows NanoDet's GFL head (RangiLyu/nanodet, ``distance2bbox``); the
    TF.js export takes RGB/255, channels-first, plain resize (no letterbox).
    """

    kind = "nanodet"
    size = 416
    bins = 11

    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, dict]:
        x = _resize(image_bgr, self.size, self.size)[:, :, ::-1].transpose(2, 0, 1)
        return (x[None].astype(np.float32) / 255.0), {}

    def postprocess(self, outputs: list[np.ndarray], meta: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        levels: dict[int, dict[int, np.ndarray]] = {}
        for out in outputs:
            levels.setdefault(out.shape[1], {})[out.shape[2]] = out[0]
        all_boxes, all_scores, all_classes = [], [], []
        for n, pair in levels.items():
            side = int(round(n**0.5))
            stride = self.size / side
            scores, reg = pair[len(COCO_LABELS)], pair[4 * self.bins]
            cls = scores.argmax(1)
            best = scores[np.arange(n), cls]
            keep = best > 0.05  # cheap pre-filter before the softmax over thousands of cells
            if not keep.any():
                continue
            idx = np.nonzero(keep)[0]
            logits = reg[idx].reshape(-1, 4, self.bins)
            logits = logits - logits.max(2, keepdims=True)
            prob = np.exp(logits)
            prob /= prob.sum(2, keepdims=True)
            dist = (prob * np.arange(self.bins, dtype=np.float32)).sum(2) * stride  # l, t, r, b
            cx = (idx % side + 0.5) * stride
            cy = (idx // side + 0.5) * stride
            boxes = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1)
            all_boxes.append(boxes / self.size)
            all_scores.append(best[idx])
            all_classes.append(cls[idx])
        if not all_boxes:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        return np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_classes)


class _XyxyScoreClass(_Adapter):
    """Graphs whose output is already [1,K,6] = x1,y1,x2,y2 (input pixels), score, class:
    CenterNet from human-models, and end-to-end YOLO exports (v10, ``nms=True``)."""

    kind = "xyxy"

    def __init__(self, *args, channels_last: bool = False, scale255: bool = True, letterbox: bool = True) -> None:
        super().__init__(*args)
        self.channels_last = channels_last
        self.scale255 = scale255
        self.letterbox = letterbox
        dims = self.input_shape[1:3] if channels_last else self.input_shape[2:4]
        self.height, self.width = (int(d) if isinstance(d, int) and d > 0 else 640 for d in dims)

    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, dict]:
        if self.letterbox:
            x, meta = _letterbox(image_bgr, self.width, self.height)
        else:
            x, meta = _resize(image_bgr, self.width, self.height), {"scale": None}
        x = x[:, :, ::-1].astype(np.float32)
        if self.scale255:
            x /= 255.0
        if not self.channels_last:
            x = x.transpose(2, 0, 1)
        meta["shape"] = image_bgr.shape[:2]
        return np.ascontiguousarray(x[None]), meta

    def _pick(self, outputs: list[np.ndarray]) -> np.ndarray:
        for out in outputs:
            if out.ndim == 3 and out.shape[2] == 6:
                return out[0]
        raise ModelError("detector output has no [1,K,6] tensor")

    def postprocess(self, outputs: list[np.ndarray], meta: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        det = self._pick(outputs).astype(np.float32)
        boxes = _to_frame(det[:, :4], meta, self.width, self.height)
        return boxes, det[:, 4], det[:, 5].astype(np.int64)


class _CenterNet(_XyxyScoreClass):
    """MobileNetV3 CenterNet 512: channels-last RGB 0..255, plain resize, [1,100,6] output."""

    kind = "centernet"

    def __init__(self, *args) -> None:
        super().__init__(*args, channels_last=True, scale255=False, letterbox=False)

    def _pick(self, outputs: list[np.ndarray]) -> np.ndarray:
        return outputs[self.output_names.index("tower_0/detections")][0]


class _Yolo(_Adapter):
    """YOLO-style raw head: [1, 4+C, N] (v8/v11, no objectness) or [1, N, 5+C] (v5/v7),
    boxes as cx, cy, w, h in input pixels; letterboxed RGB/255 channels-first input."""

    kind = "yolo"

    def __init__(self, *args, num_classes: int) -> None:
        super().__init__(*args)
        self.num_classes = num_classes
        dims = self.input_shape[2:4]
        self.height, self.width = (int(d) if isinstance(d, int) and d > 0 else 640 for d in dims)

    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, dict]:
        x, meta = _letterbox(image_bgr, self.width, self.height)
        meta["shape"] = image_bgr.shape[:2]
        x = x[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0
        return np.ascontiguousarray(x[None]), meta

    def postprocess(self, outputs: list[np.ndarray], meta: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return decode_yolo(outputs[0], self.num_classes, meta, self.width, self.height)


def decode_yolo(
    raw: np.ndarray, num_classes: int, meta: dict, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a raw YOLO head (see :class:`_Yolo`) into normalised boxes, scores, classes."""
    out = raw[0] if raw.ndim == 3 else raw
    if out.ndim != 2:
        raise ModelError(f"YOLO-style output must be [1,C,N] or [1,N,C], not {list(raw.shape)}")
    # Channels are the short side (84 vs 8400); transpose so rows are candidates.
    if out.shape[0] < out.shape[1]:
        out = out.T
    c = out.shape[1]
    if c == 4 + num_classes:
        cls_scores = out[:, 4:]
    elif c == 5 + num_classes:
        cls_scores = out[:, 5:] * out[:, 4:5]  # objectness x class probability
    else:
        raise ModelError(
            f"YOLO-style output has {c} channels per box; with {num_classes} labels expected "
            f"{4 + num_classes} (v8) or {5 + num_classes} (v5): give the model's labels file"
        )
    cls = cls_scores.argmax(1)
    scores = cls_scores[np.arange(len(out)), cls]
    cx, cy, w, h = out[:, 0], out[:, 1], out[:, 2], out[:, 3]
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    return _to_frame(xyxy, meta, width, height), scores.astype(np.float32), cls.astype(np.int64)


def _letterbox(image_bgr: np.ndarray, width: int, height: int) -> tuple[np.ndarray, dict]:
    """Scale to fit keeping the aspect ratio, pad with grey 114 (YOLO's convention)."""
    h, w = image_bgr.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.full((height, width, 3), 114, np.uint8)
    left, top = (width - nw) // 2, (height - nh) // 2
    canvas[top : top + nh, left : left + nw] = _resize(image_bgr, nw, nh)
    return canvas, {"scale": scale, "pad": (left, top)}


def _to_frame(xyxy: np.ndarray, meta: dict, width: int, height: int) -> np.ndarray:
    """Input-pixel boxes -> fractions of the original frame (undoing a letterbox)."""
    xyxy = xyxy.astype(np.float32).copy()
    if meta.get("scale"):
        left, top = meta["pad"]
        h, w = meta["shape"]
        xyxy[:, [0, 2]] = (xyxy[:, [0, 2]] - left) / meta["scale"] / w
        xyxy[:, [1, 3]] = (xyxy[:, [1, 3]] - top) / meta["scale"] / h
    else:
        xyxy[:, [0, 2]] /= width
        xyxy[:, [1, 3]] /= height
    return xyxy


# ---------------------------------------------------------------------- detector
class Detector:
    """One loaded detector; :meth:`detect` is blocking and thread-confined.

    ``kind`` "auto" recognises the catalogue's NanoDet and CenterNet graphs by their
    inputs and outputs and treats anything else as YOLO-style ([1,4+C,N] / [1,N,5+C]
    raw heads, or [1,K,6] already-decoded boxes).
    """

    def __init__(
        self,
        model_path: Path | str,
        *,
        kind: str = "auto",
        labels: list[str] | tuple[str, ...] | None = None,
        score_threshold: float | None = None,
        sure_threshold: float | None = None,
        iou_threshold: float = 0.5,
        agnostic_iou_threshold: float = 0.7,
        max_detections: int = 20,
        threads: int = 2,
        model_id: str | None = None,
    ) -> None:
        import onnxruntime as ort

        if kind not in KINDS:
            raise ModelError(f"detector kind must be one of {KINDS}, not {kind!r}")
        given = [t for t in (score_threshold, sure_threshold) if t is not None]
        if not all(0.0 <= t <= 1.0 for t in given) or not 0.0 < iou_threshold <= 1.0:
            raise ModelError("detector thresholds must lie between 0 and 1")
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ModelError(f"detector model {path} does not exist")
        self.model_path = path
        self.model_id = model_id or str(path)
        try:  # below `maybe` a detection is dropped; from `sure` up it is spoken as fact
            self.confidence = confidence_for(model_id, maybe=score_threshold, sure=sure_threshold)
        except ValueError as err:
            raise ModelError(f"detector thresholds: {err}") from None
        self.score_threshold = self.confidence.maybe
        self.iou_threshold = iou_threshold
        self.agnostic_iou_threshold = agnostic_iou_threshold
        self.max_detections = max_detections
        opts = ort.SessionOptions()
        # Two cores are shared with Whisper, the LLM and Piper: the thread count is a choice.
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load detector {path}: {str(err).splitlines()[0]}") from None
        # Labels given by the caller (a .names file) win; else the ONNX's own (Ultralytics
        # exports carry them); else COCO's 80, which every catalogue detector uses.
        self.labels = tuple(labels) if labels else (labels_from_metadata(self._session) or COCO_LABELS)
        self._adapter = self._make_adapter(kind)
        self.kind = self._adapter.kind
        self._lock = threading.Lock()  # onnxruntime sessions are thread-safe; our callers should not overlap anyway

    @classmethod
    def from_catalogue(cls, catalogue: Catalogue | None = None, model: str | None = None, **kwargs) -> Detector:
        """The catalogue's default vision model, a catalogue id, or a path to a user's ONNX."""
        from ..catalog import load_catalogue

        cat = catalogue or load_catalogue()
        if model is None or model in cat.models:
            entry = cat.default_for(ROLE) if model is None else cat.get(model)
            if entry.role != ROLE:
                raise ModelError(f"model {entry.id!r} is a {entry.role} model, not a {ROLE} model")
            return cls(cat.verify(entry), model_id=entry.id, **kwargs)
        path = Path(model).expanduser()
        if not path.exists():
            raise ModelError(f"vision model {model!r} is neither a catalogue id nor an existing path")
        labels_file = path.with_suffix(".names")
        if "labels" not in kwargs and labels_file.is_file():
            kwargs["labels"] = load_labels(labels_file)
        return cls(path, **kwargs)

    def _make_adapter(self, kind: str) -> _Adapter:
        inp = self._session.get_inputs()[0]
        outs = self._session.get_outputs()
        names = [o.name for o in outs]
        shapes = [list(o.shape) for o in outs]
        args = (inp.name, list(inp.shape), names)
        if kind == "auto":
            if list(inp.shape) == [1, 3, 416, 416] and len(outs) == 6 and {s[-1] for s in shapes} == {80, 44}:
                kind = "nanodet"
            elif "tower_0/detections" in names:
                kind = "centernet"
            elif any(len(s) == 3 and s[-1] == 6 for s in shapes):
                kind = "xyxy"
            else:
                kind = "yolo"
        if kind == "nanodet":
            return _NanoDet(*args)
        if kind == "centernet":
            return _CenterNet(*args)
        if kind == "xyxy":
            return _XyxyScoreClass(*args)
        if len(inp.shape) != 4:
            raise ModelError(f"detector {self.model_path.name}: input must be an image [1,3,H,W], not {inp.shape}")
        return _Yolo(*args, num_classes=len(self.labels))

    def warm(self) -> None:
        """One inference on a grey frame: the first real question is as fast as the tenth."""
        self.detect(np.full((480, 640, 3), 128, np.uint8))

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Objects in a BGR uint8 frame, best first, after thresholds and NMS."""
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.size == 0:
            raise ValueError(f"detect() needs an HxWx3 BGR image, not shape {image_bgr.shape}")
        tensor, meta = self._adapter.preprocess(image_bgr)
        with self._lock:
            outputs = self._session.run(None, {self._adapter.input_name: tensor})
        boxes, scores, classes = self._adapter.postprocess(outputs, meta)
        return self._select(boxes, scores, classes)

    def _select(self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> list[Detection]:
        keep = (scores >= self.score_threshold) & (classes >= 0) & (classes < len(self.labels))
        boxes, scores, classes = np.clip(boxes[keep], 0.0, 1.0), scores[keep], classes[keep]
        # Drop degenerate boxes (clipped to nothing at the frame's edge).
        ok = (boxes[:, 2] - boxes[:, 0] > 1e-3) & (boxes[:, 3] - boxes[:, 1] > 1e-3)
        boxes, scores, classes = boxes[ok], scores[ok], classes[ok]
        idx = batched_nms(boxes, scores, classes, self.iou_threshold)
        boxes, scores, classes = boxes[idx], scores[idx], classes[idx]
        # A class-agnostic pass with a looser threshold: the same vehicle reported as
        # both "car" and "truck" is one object to the wearer; keep the likelier label.
        idx = nms(boxes, scores, self.agnostic_iou_threshold) if len(boxes) else idx[:0]
        return [
            Detection(self.labels[int(classes[i])], round(float(scores[i]), 4), _rounded_box(boxes[i]),
                      int(classes[i]), sure=bool(scores[i] >= self.confidence.sure))
            for i in idx[: self.max_detections]
        ]


def labels_from_metadata(session: Any) -> tuple[str, ...] | None:
    """Class names from an ONNX's metadata (Ultralytics: ``names = "{0: 'person', ...}"``), or None.

    The model file is untrusted input: the text is parsed as a literal only (never
    evaluated), bounded in size, and accepted only as names for 0..N-1 in order.
    """
    try:
        raw = session.get_modelmeta().custom_metadata_map.get("names")
    except Exception:  # a graph without metadata: onnxruntime's own exception types
        return None
    if not isinstance(raw, str) or len(raw) > 100_000:
        return None
    try:
        names = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        log.warning("ignoring the detector's unreadable class names metadata")
        return None
    if isinstance(names, dict) and sorted(names) == list(range(len(names))) and names:
        ordered = [names[i] for i in range(len(names))]
    elif isinstance(names, (list, tuple)) and names:
        ordered = list(names)
    else:
        return None
    if not all(isinstance(n, str) and 0 < len(n) <= 60 for n in ordered):
        return None
    return tuple(ordered)


def load_labels(path: Path) -> tuple[str, ...]:
    """One label a line (darknet's ``.names`` format)."""
    try:
        return tuple(ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip())
    except OSError as err:
        raise ModelError(f"cannot read labels file {path}: {err.strerror}") from None
