# SPDX-License-Identifier: GPL-3.0-or-later
"""How the tools say things: memory answers and the glasses' battery (see :mod:`..wording` for the rest)."""

from __future__ import annotations

import math
from typing import Any

from ..memory import Memory
from ..wording import flip_person, lower_first, timer_name

__all__ = ["device_status", "flip_person", "lower_first", "recall_answer", "timer_name"]


def recall_answer(hits: list[Memory]) -> str:
    """The direct answer to a recall question: the best memory said back; "" if none matched."""
    if not hits:
        return ""
    return f"You told me {flip_person(lower_first(hits[0].text))}."


def device_status(client: Any) -> str:
    """Battery and temperature from the glasses' telemetry, or an honest answer without them."""
    if client is None:
        return "I'm not connected to the glasses, so I can't read the battery."
    t = getattr(client, "telemetry", None)
    if t is None:
        return "The glasses haven't reported their battery yet."
    # The bridge drops impossible readings, but the glasses are untrusted: never let a NaN or an
    # infinity become a failed turn (round() raises on both) instead of an honest sentence.
    pct, temp = _finite(t.battery_percent, 0.0, 100.0), _finite(t.temperature_c, -60.0, 150.0)
    if pct is None:
        return "The glasses reported a battery level I can't make sense of."
    charging = ", charging" if t.charging else ""
    said = f"The battery is at {round(pct)} percent{charging}."
    # NaN or "unknown": glasses with no thermometer (Brilliant Frame/Halo) say the battery only.
    if temp is None or t.thermal_state == "unknown":
        return said
    state = t.thermal_state if t.thermal_state in ("nominal", "warm", "hot", "critical") else None
    return said + (f" The glasses are {state} at {round(temp)} degrees." if state
                   else f" The glasses are at {round(temp)} degrees.")


def _finite(value: Any, low: float, high: float) -> float | None:
    """``value`` as a float when it is a finite number within [low, high], else None."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return v if math.isfinite(v) and low <= v <= high else None
