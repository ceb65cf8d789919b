# SPDX-License-Identifier: GPL-3.0-or-later
"""Vision for the glasses: object detection, text reading, photos, from the camera's frames.

All engines are synchronous and thread-confined like the voice engines: load once,
warm, call from one worker thread. Bad frames never raise: they become a
:class:`FrameProblem` with a sentence for the wearer.
"""

from __future__ import annotations

from .detector import Detection, Detector, decode_yolo, load_labels, nms
from .frames import NO_CAMERA, FrameProblem, decode_frame, load_image, quality_problem
from .intents import VisionIntent, match_vision_intent
from .labels import COCO_LABELS
from .ocr import TextLine, TextReader, spoken_text
from .photos import PhotoError, frame_metadata, save_photo
from .scene import describe_prompt, describe_scene, mentions_any, names_only, spoken_scene
from .service import VisionAnswer, VisionService

__all__ = [
    "COCO_LABELS", "NO_CAMERA", "Detection", "Detector", "FrameProblem", "PhotoError", "TextLine", "TextReader",
    "VisionAnswer", "VisionIntent", "VisionService", "decode_frame", "decode_yolo", "describe_prompt",
    "describe_scene", "frame_metadata", "load_image", "load_labels", "match_vision_intent", "mentions_any",
    "names_only", "nms", "quality_problem", "save_photo", "spoken_scene", "spoken_text",
]
