# SPDX-License-Identifier: GPL-3.0-or-later
"""One call per vision request: frame in, facts / text / saved photo and a spoken answer out.

The voice loop calls :meth:`VisionService.answer` from a worker thread with the
intent (from :func:`match_vision_intent`) and the JPEG captured *after* the
question (``BridgeClient.capture()`` guarantees a frame answering that request,
never an older one). Bad frames and a missing camera come back as a spoken
answer with ``problem`` set; nothing here raises on bad input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .detector import Detection, Detector
from .frames import NO_CAMERA, FrameProblem, decode_frame
from .intents import VisionIntent
from .ocr import TextLine, TextReader, spoken_text
from .photos import PhotoError, save_photo
from .scene import describe_prompt, describe_scene, guess_sentence, guesses_of, spoken_scene, sure_of

DEFAULT_PHOTO_DIR = Path("~/Pictures/glasses").expanduser()


@dataclass
class VisionAnswer:
    """What a vision request produced.

    ``spoken`` is always a complete answer the loop can say as is (the plain
    description, the text read, the photo confirmation or the problem). For
    "describe" with something sure in view, ``llm_prompt`` is the user message to let
    the LLM phrase a nicer answer from ``facts`` (the sure objects only); the reply is
    said, followed by ``guesses`` (the "There might also be ..." sentence), only if it
    names one of ``labels`` and nothing else (:func:`~.scene.names_only`), else
    ``spoken`` is.
    """

    intent: VisionIntent
    spoken: str
    problem: FrameProblem | None = None
    detections: list[Detection] = field(default_factory=list)
    lines: list[TextLine] = field(default_factory=list)
    facts: str = ""
    guesses: str = ""
    llm_prompt: str | None = None
    photo: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """The objects the detector is sure of: what may be said as fact."""
        return sorted({d.label for d in sure_of(self.detections)})

    @property
    def maybe_labels(self) -> list[str]:
        """The objects only good for a guess."""
        return sorted({d.label for d in guesses_of(self.detections)})


class VisionService:
    """The loaded detector and text reader (either may be None when not wanted)."""

    def __init__(
        self, detector: Detector | None, reader: TextReader | None, *,
        photo_dir: Path | str = DEFAULT_PHOTO_DIR, max_side: int = 1280,
    ) -> None:
        self.detector = detector
        self.reader = reader
        self.photo_dir = Path(photo_dir).expanduser()
        self.max_side = max_side

    @classmethod
    def load(
        cls, catalogue: Any = None, *, model: str | None = None, threads: int = 2, ocr: bool = True,
        photo_dir: Path | str = DEFAULT_PHOTO_DIR, **detector_kwargs: Any,
    ) -> VisionService:
        """Load the detector (catalogue default, an id, or an ONNX path) and the OCR, and warm both."""
        detector = Detector.from_catalogue(catalogue, model, threads=threads, **detector_kwargs)
        detector.warm()
        reader = TextReader(threads=threads) if ocr else None
        if reader is not None:
            reader.warm()
        return cls(detector, reader, photo_dir=photo_dir)

    def answer(
        self, intent: VisionIntent, jpeg: bytes | None, *, question: str = "",
        metadata: dict[str, Any] | None = None, has_camera: bool = True,
    ) -> VisionAnswer:
        """Handle one request on one frame (``jpeg`` None or ``has_camera`` False: no camera)."""
        t0 = time.perf_counter()
        if not has_camera or jpeg is None:
            return VisionAnswer(intent, NO_CAMERA.spoken, problem=NO_CAMERA)
        if intent == "photo":
            return self._photo(jpeg, metadata)
        image = decode_frame(jpeg, max_side=self.max_side)
        timings = {"decode_s": round(time.perf_counter() - t0, 4)}
        if isinstance(image, FrameProblem):
            return VisionAnswer(intent, image.spoken, problem=image, timings=timings)
        h, w = image.shape[:2]
        if intent == "read":
            if self.reader is None:
                return VisionAnswer(intent, "Reading text is not enabled on this device.", timings=timings)
            t1 = time.perf_counter()
            lines = self.reader.read(image)
            timings["ocr_s"] = round(time.perf_counter() - t1, 4)
            return VisionAnswer(intent, spoken_text(lines), lines=lines, timings=timings)
        if self.detector is None:
            return VisionAnswer(intent, "Object recognition is not enabled on this device.", timings=timings)
        t1 = time.perf_counter()
        dets = self.detector.detect(image)
        timings["detect_s"] = round(time.perf_counter() - t1, 4)
        facts = describe_scene(dets, w, h)
        # Nothing sure: no LLM. The plain sentence says so (or words the guesses as guesses),
        # which a small LLM asked to describe "nothing" would not.
        prompt = describe_prompt(facts, question or "What am I looking at?") if sure_of(dets) else None
        return VisionAnswer(intent, spoken_scene(dets, w, h), detections=dets, facts=facts,
                            guesses=guess_sentence(dets, w, h), llm_prompt=prompt, timings=timings)

    def _photo(self, jpeg: bytes, metadata: dict[str, Any] | None) -> VisionAnswer:
        # A dark or blurred photo is still the wearer's photo: only refuse what is not a picture.
        image = decode_frame(jpeg, max_side=self.max_side, check_quality=False)
        if isinstance(image, FrameProblem):
            return VisionAnswer("photo", image.spoken, problem=image)
        try:
            path = save_photo(jpeg, self.photo_dir, metadata)
        except PhotoError as err:
            return VisionAnswer("photo", "I couldn't save the photo.",
                                problem=FrameProblem("photo-not-saved", str(err), "I couldn't save the photo."))
        return VisionAnswer("photo", "Photo saved.", photo=path)
