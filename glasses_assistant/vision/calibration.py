# SPDX-License-Identifier: GPL-3.0-or-later
"""How sure each detector has to be before the wearer hears an object as fact.

A detector's score is not a probability, and each model's scores sit differently:
NanoDet calls a coffee cup a toilet at 0.58, YOLOv8n says "cup" at 0.92 and its wrong
labels mostly stay under 0.6. So every catalogue detector gets two numbers, measured
rather than guessed, by ``glasses-assistant vision bench --quality --calibrate`` on the
labelled photo set (``photoset.toml``):

* ``sure``: the lowest score at which the labels a detector reports were right at
  least 90 % of the time on the set. At or above it the object is said as fact ("I
  see a cup").
* ``maybe``: the lowest score at which its labels between ``maybe`` and ``sure`` were
  still right at least half of the time. Those are said as a guess ("there might also
  be a cup"); anything below is left out.

The numbers are written down here (not looked up at run time) so that a device
answers the same way whatever is installed on it. A user's own ONNX has no
calibration and gets :data:`UNCALIBRATED`; ``[vision] threshold`` and ``sure``
override either.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Confidence:
    """Score bands of one detector: ``sure`` and up is fact, ``maybe`` up to ``sure`` a guess, below is left out."""

    maybe: float
    sure: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.maybe <= self.sure <= 1.0:
            raise ValueError(f"need 0 <= maybe <= sure <= 1 (got maybe={self.maybe}, sure={self.sure})")


# From `glasses-assistant vision bench --quality --calibrate` on the 55 photos of photoset.toml
# (the run, the table and the machine are in README's "Seeing" section). Calibrated and scored
# on the same set: with 55 photos there is no held-out part to spare, so treat the precision
# at these bands as optimistic by a few points.
CALIBRATED: dict[str, Confidence] = {
    "yolov8n-coco": Confidence(maybe=0.6, sure=0.65),
    "yolov8s-coco": Confidence(maybe=0.5, sure=0.65),
    "nanodet-coco": Confidence(maybe=0.45, sure=0.5),
    "centernet-coco": Confidence(maybe=0.3, sure=0.5),
}

UNCALIBRATED = Confidence(maybe=0.3, sure=0.5)
"""For a detector nobody measured (a user's ONNX): the old single threshold as the guess band."""


def confidence_for(model_id: str | None, *, maybe: float | None = None, sure: float | None = None) -> Confidence:
    """The bands for ``model_id`` (a catalogue id, or anything else for a user's model), with overrides.

    An override of one band keeps the other consistent: a ``maybe`` above the calibrated
    ``sure`` raises ``sure`` with it, and a ``sure`` below ``maybe`` lowers ``maybe``.
    """
    base = CALIBRATED.get(model_id or "", UNCALIBRATED)
    low = base.maybe if maybe is None else maybe
    high = base.sure if sure is None else sure
    if maybe is not None and sure is None:
        high = max(high, low)
    if sure is not None and maybe is None:
        low = min(low, high)
    return Confidence(maybe=low, sure=high)
