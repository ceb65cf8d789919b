# SPDX-License-Identifier: GPL-3.0-or-later
"""Does the detector name what is really there? Precision and recall of the spoken objects.

``glasses-assistant vision bench --quality`` runs each detector over the hand-labelled
photos of ``photoset.toml`` the way the assistant sees a frame (a JPEG of at most
1280 px, decoded and checked like the glasses' frames), turns its detections into what
the wearer would hear (:func:`~.scene.spoken_labels`: the sure objects, then the
guesses) and scores those words against the labels:

* precision: of the objects said as fact, how many are really there (``expected`` or
  ``also`` in the photo set); a wrong fact is what makes a wearer stop trusting it;
* recall: of the objects a person would name (``expected``), how many were said;
* the same two with the guesses counted as said, and the time per 640 px frame.

Calibration (``--calibrate``) sweeps the score bands on the same photos and prints the
``maybe``/``sure`` values that :mod:`.calibration` records (rules there).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AssistantError
from ..extras import hint
from .calibration import Confidence
from .detector import Detection
from .frames import FrameProblem, decode_frame, fit
from .labels import COCO_LABELS
from .scene import spoken_labels

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

PHOTOSET = Path(__file__).with_name("photoset.toml")
TARGET_S = 0.15
"""Per-frame detection time the default has to meet on the 2-core reference machine."""
SURE_PRECISION = 0.9
MAYBE_PRECISION = 0.5
MIN_FACTS = 10
_GRID = tuple(round(0.05 * i, 2) for i in range(2, 20))  # 0.10 .. 0.95


class PhotoSetError(AssistantError):
    """The photo set is unreadable, or a photo is missing or not the labelled one."""

    code = "photoset"


@dataclass(frozen=True)
class Source:
    """A package the photos come from: a Debian package's folder, or a Python package's."""

    name: str
    kind: str
    package: str
    root: str
    licence: str
    extra: str = ""

    def folder(self) -> Path:
        if self.kind == "debian":
            return Path(self.root)
        spec = importlib.util.find_spec(self.package)  # located, not imported: no import cost
        if spec is None or not spec.submodule_search_locations:
            raise PhotoSetError(self.install_hint())
        return Path(next(iter(spec.submodule_search_locations))) / self.root

    def install_hint(self) -> str:
        if self.kind == "debian":
            return f"apt-get install {self.package} (`make` does it)"
        return hint(self.package, self.extra or "bench", f"the photos of {self.name}")


@dataclass(frozen=True)
class Photo:
    """One labelled photo (see photoset.toml for what ``expected`` and ``also`` mean)."""

    source: str
    file: str
    sha256: str
    expected: frozenset[str]
    also: frozenset[str]
    note: str = ""
    licence: str = ""

    @property
    def id(self) -> str:
        return f"{self.source}/{self.file}"

    @property
    def present(self) -> frozenset[str]:
        return self.expected | self.also


@dataclass(frozen=True)
class PhotoSet:
    sources: dict[str, Source]
    photos: tuple[Photo, ...]

    def path(self, photo: Photo) -> Path:
        return self.sources[photo.source].folder() / photo.file

    def licence(self, photo: Photo) -> str:
        return photo.licence or self.sources[photo.source].licence


def load_photoset(path: Path = PHOTOSET) -> PhotoSet:
    """Parse and check the photo set; labels must be COCO words."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise PhotoSetError(f"cannot read the photo set {path}: {err}") from None
    try:
        sources = {name: Source(name=name, kind=str(s["kind"]), package=str(s["package"]), root=str(s["root"]),
                                licence=str(s["licence"]), extra=str(s.get("extra", "")))
                   for name, s in data["source"].items()}
        photos = tuple(Photo(source=str(p["source"]), file=str(p["file"]), sha256=str(p["sha256"]).lower(),
                             expected=frozenset(p.get("expected", ())), also=frozenset(p.get("also", ())),
                             note=str(p.get("note", "")), licence=str(p.get("licence", "")))
                       for p in data["photo"])
    except (KeyError, TypeError, AttributeError) as err:
        raise PhotoSetError(f"{path}: missing or bad field {err}") from None
    for p in photos:
        if p.source not in sources:
            raise PhotoSetError(f"{path}: photo {p.file} names an unknown source {p.source!r}")
        unknown = sorted((p.expected | p.also) - set(COCO_LABELS))
        if unknown:
            raise PhotoSetError(f"{path}: photo {p.id} has labels that are not COCO words: {unknown}")
    return PhotoSet(sources, photos)


def read_photos(photoset: PhotoSet) -> list[tuple[Photo, np.ndarray]]:
    """Every photo, read and checked against its sha256; a missing package is one line naming it."""
    import cv2

    out = []
    for photo in photoset.photos:
        path = photoset.path(photo)
        try:
            data = path.read_bytes()
        except OSError:
            raise PhotoSetError(f"photo {path} is missing: {photoset.sources[photo.source].install_hint()}") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != photo.sha256:
            raise PhotoSetError(f"photo {path} has sha256 {digest[:16]}…, not the labelled one's "
                                f"{photo.sha256[:16]}… (the package changed it: label it again)")
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise PhotoSetError(f"photo {path} cannot be decoded")
        out.append((photo, image))
    return out


# ------------------------------------------------------------------------- scoring
@dataclass
class Tally:
    """Counts over (photo, label) pairs: said and right, said and wrong, expected and said."""

    right: int = 0
    wrong: int = 0
    found: int = 0
    expected: int = 0

    def add(self, said: Iterable[str], photo: Photo) -> None:
        said = set(said)
        self.right += len(said & photo.present)
        self.wrong += len(said - photo.present)
        self.found += len(said & photo.expected)
        self.expected += len(photo.expected)

    @property
    def precision(self) -> float:
        said = self.right + self.wrong
        return self.right / said if said else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.expected if self.expected else 1.0


@dataclass
class PhotoResult:
    photo: Photo
    facts: list[str]
    guesses: list[str]
    problem: str | None = None
    detections: list[Detection] = field(default_factory=list)


@dataclass
class DetectorResult:
    """One detector over the photo set."""

    model: str
    confidence: Confidence
    photos: list[PhotoResult]
    times_s: list[float]

    def tally(self, *, with_guesses: bool = False) -> Tally:
        t = Tally()
        for r in self.photos:
            t.add(r.facts + (r.guesses if with_guesses else []), r.photo)
        return t

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s) if self.times_s else float("nan")

    @property
    def p90_s(self) -> float:
        return float(np.percentile(self.times_s, 90)) if self.times_s else float("nan")

    @property
    def min_s(self) -> float:
        return min(self.times_s) if self.times_s else float("nan")

    def with_bands(self, bands: Confidence) -> DetectorResult:
        """The same run scored as if the detector had used ``bands`` (no re-run: the
        detections were kept down to the sweep's floor)."""
        photos = []
        for r in self.photos:
            said = [replace(d, sure=d.score >= bands.sure) for d in r.detections if d.score >= bands.maybe]
            facts, guesses = spoken_labels(said)
            photos.append(PhotoResult(r.photo, facts, guesses, r.problem, r.detections))
        return DetectorResult(self.model, bands, photos, self.times_s)

    def wrong_facts(self) -> list[tuple[str, str]]:
        return [(r.photo.id, lb) for r in self.photos for lb in r.facts if lb not in r.photo.present]

    def missed(self) -> list[tuple[str, str]]:
        return [(r.photo.id, lb) for r in self.photos for lb in sorted(r.photo.expected) if lb not in r.facts]

    def summary(self) -> dict[str, Any]:
        facts, both = self.tally(), self.tally(with_guesses=True)
        return {
            "model": self.model, "maybe": self.confidence.maybe, "sure": self.confidence.sure,
            "precision": round(facts.precision, 3), "recall": round(facts.recall, 3),
            "precision_with_guesses": round(both.precision, 3), "recall_with_guesses": round(both.recall, 3),
            "wrong_facts": len(self.wrong_facts()), "median_ms": round(self.median_s * 1000, 1),
            "p90_ms": round(self.p90_s * 1000, 1), "min_ms": round(self.min_s * 1000, 1),
            "refused_frames": sum(1 for r in self.photos if r.problem),
        }


def frame_as_glasses_send(image: np.ndarray, max_side: int = 1280) -> np.ndarray | FrameProblem:
    """The photo as the assistant gets a frame: a JPEG of at most ``max_side``, decoded and checked."""
    import cv2

    ok, jpeg = cv2.imencode(".jpg", fit(image, max_side), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:  # pragma: no cover - OpenCV encodes any 8-bit image
        return FrameProblem("undecodable", "cannot encode", "I couldn't read the picture.")
    return decode_frame(jpeg.tobytes(), max_side=max_side)


def run_detectors(detectors: Sequence[Any], photos: Sequence[tuple[Photo, np.ndarray]], *, runs: int = 3,
                  side: int = 640, progress: Callable[[str], None] = lambda _m: None) -> list[DetectorResult]:
    """Each detector over every photo: what the service would say, and the time per ``side`` px frame.

    The detectors take turns photo by photo (the first one rotating), so that other load
    on the machine falls on all of them alike and their times compare side by side.
    Each runs once per photo on the frame the service would see, with its score floor
    lowered to 0.1 so that :func:`calibrate` can sweep the bands on the same run; what is
    said is then worked out with the detector's own bands.
    """
    floors = [d.score_threshold for d in detectors]
    results = [DetectorResult(str(d.model_id), d.confidence, [], []) for d in detectors]
    try:
        for d in detectors:
            d.score_threshold = min(d.score_threshold, _GRID[0])
        for n, (photo, image) in enumerate(photos):
            frame = frame_as_glasses_send(image)
            small = fit(image, side)
            for k in range(len(detectors)):
                i = (n + k) % len(detectors)
                det, res = detectors[i], results[i]
                if isinstance(frame, FrameProblem):
                    res.photos.append(PhotoResult(photo, [], [], problem=frame.code))
                else:
                    res.photos.append(PhotoResult(photo, [], [], detections=det.detect(frame)))
                det.detect(small)  # warm for this frame size: allocation is not per-frame cost
                for _ in range(runs):
                    t = time.perf_counter()
                    det.detect(small)
                    res.times_s.append(time.perf_counter() - t)
            if (n + 1) % 10 == 0:
                progress(f"  {n + 1}/{len(photos)} photos")
    finally:
        for d, floor in zip(detectors, floors, strict=True):
            d.score_threshold = floor
    return [r.with_bands(r.confidence) for r in results]  # what each says with its own bands


def calibrate(result: DetectorResult) -> tuple[Confidence, dict[str, Any]]:
    """The bands the photos support for this detector (rules in :mod:`.calibration`).

    Works on (photo, label, best score) pairs: ``sure`` is the lowest grid score at which
    the labels scoring at least that are right >= 90 % of the time (at least
    ``MIN_FACTS`` of them); ``maybe`` the lowest from which the labels between it and
    ``sure`` are right >= 50 % of the time. Photos the frame checks refused are left out.
    """
    pairs: list[tuple[float, bool]] = []
    for r in result.photos:
        best: dict[str, float] = {}
        for d in r.detections:
            best[d.label] = max(best.get(d.label, 0.0), d.score)
        pairs += [(s, lb in r.photo.present) for lb, s in best.items()]

    def precision(lo: float, hi: float = 2.0) -> tuple[float, int]:
        band = [ok for s, ok in pairs if lo <= s < hi]
        return (sum(band) / len(band) if band else 1.0), len(band)

    # The lowest score whose labels (with at least MIN_FACTS of them, so that one lucky
    # label does not set it) are right often enough to be said as fact ...
    sure = next((t for t in _GRID if precision(t)[1] >= MIN_FACTS and precision(t)[0] >= SURE_PRECISION), 1.0)
    # ... and the widest band under it still right at least half of the time; none (maybe ==
    # sure) when even the narrowest is wrong more often than right: then guesses are left out.
    maybe = next((t for t in _GRID if t < sure and precision(t, sure)[0] >= MAYBE_PRECISION
                  and precision(t, sure)[1] > 0), sure)
    facts_p, facts_n = precision(sure)
    guess_p, guess_n = precision(maybe, sure)
    return Confidence(maybe=maybe, sure=sure), {
        "model": result.model, "maybe": maybe, "sure": sure, "fact_labels": facts_n,
        "fact_precision": round(facts_p, 3), "guess_labels": guess_n, "guess_precision": round(guess_p, 3)}


F1_TIE = 0.05
"""Facts F1 this close to the best counts as a tie (on 35 labels, one or two objects): the cheaper model wins."""


def facts_f1(result: DetectorResult) -> float:
    t = result.tally()
    return 2 * t.precision * t.recall / (t.precision + t.recall) if t.precision + t.recall else 0.0


def choose_default(results: Sequence[DetectorResult], target_s: float = TARGET_S) -> str | None:
    """The detector to ship: among those within the time target, the fastest whose facts F1
    is within :data:`F1_TIE` of the best.

    The time compared is each detector's fastest frame, not its median: the target is
    for a device that runs nothing else, and on a shared machine the median measures the
    neighbours' load as much as the model (the fastest of many runs is the least disturbed
    estimate of what the model itself costs). The table shows both. A near tie goes to
    the cheaper model because the detector shares two cores with Whisper, the LLM and
    Piper: time saved there is latency the wearer hears.
    """
    fast = [r for r in results if r.min_s <= target_s]
    if not fast:
        return None
    best = max(facts_f1(r) for r in fast)
    return min((r for r in fast if facts_f1(r) >= best - F1_TIE), key=lambda r: r.min_s).model


def table(results: Sequence[DetectorResult]) -> list[str]:
    """The side-by-side table, one line a detector."""
    lines = [f"{'detector':<16} {'facts P':>7} {'R':>5}   {'+guesses P':>10} {'R':>5}   {'wrong':>5}   "
             f"{'ms/frame p50':>12} {'p90':>5} {'min':>5}   bands (maybe / sure)"]
    for r in results:
        s = r.summary()
        lines.append(f"{r.model:<16} {s['precision']:>7.2f} {s['recall']:>5.2f}   {s['precision_with_guesses']:>10.2f} "
                     f"{s['recall_with_guesses']:>5.2f}   {s['wrong_facts']:>5}   {s['median_ms']:>12.0f} "
                     f"{s['p90_ms']:>5.0f} {s['min_ms']:>5.0f}   {r.confidence.maybe:.2f} / {r.confidence.sure:.2f}")
    return lines
