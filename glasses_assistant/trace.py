# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-turn timing: when each stage of a turn happened, and the latencies they give."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

STAGES = ("end_of_turn", "stt", "llm", "tts", "hold")
"""The stages whose shares of voice-to-voice latency are reported."""


@dataclass
class TurnTrace:
    """Times are monotonic-clock seconds; None means it never happened."""

    turn: int
    speech_start: float | None = None
    speech_end: float | None = None
    """Capture time of the wearer's last voiced sample."""
    end_detected: float | None = None
    """When the end-of-turn detector decided the wearer had finished."""
    stt_start: float | None = None
    transcript_final: float | None = None
    speculative_stt: bool = False
    """True when the transcript came from the transcription started at the first pause."""
    early_end: bool = False
    """True when the turn ended before the full end-of-turn silence (the transcript read as finished)."""
    first_token: float | None = None
    first_phrase: float | None = None
    first_audio: float | None = None
    """When the first reply sample was handed to the audio sink."""
    held_ms: float = 0.0
    """How long the reply's first audio was held back after it was ready: the turn had ended early and
    could still be taken back (``[vad] hold_reply``)."""
    reply_done: float | None = None
    transcript: str = ""
    language: str = ""
    reply: str = ""
    phrases: list[str] = field(default_factory=list)
    playback_end: float | None = None
    """When the reply's last sample will have played (file sinks: as if played in real time)."""
    spans: list[tuple[str, str, float, float]] = field(default_factory=list)
    """(track, label, start, end) of everything the turn did, for the Perfetto/Chrome trace."""
    vision: dict[str, object] | None = None
    """For a vision turn: intent, detected labels, facts, text read, problem, photo, timings."""
    tool: dict[str, object] | None = None
    """For a tool turn: tool, args, how it was chosen (rule / llm / rule-fallback), the LLM's raw call, error."""
    voice: str | None = None
    """The voice the reply was spoken in (a voice spec; None: the [tts] voice)."""
    translation: dict[str, object] | None = None
    """For a translation turn: mode, languages heard and spoken, the translation, engine, model, timings."""
    early: dict[str, object] | None = None
    """What was prepared before the turn ended: prefill passes, and whether a preemptive generation was kept."""
    capped: bool = False
    interrupted: bool = False
    """The wearer talked over the reply (or tapped): ``reply`` is only what was heard before the stop."""
    barge_in: dict[str, object] | None = None
    """For an interrupted reply: reason, when it was decided and stopped, and the whole generated text."""
    outcome: str = "answered"
    """answered | interrupted | no-speech | error | announcement (a timer or reminder said between turns)"""
    error: str | None = None

    def span(self, track: str, label: str, start: float, end: float) -> None:
        self.spans.append((track, label, start, end))

    @staticmethod
    def _ms(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round((b - a) * 1000.0, 1)

    @property
    def voice_to_voice_ms(self) -> float | None:
        """End of the wearer's speech to the first sample of reply audio."""
        return self._ms(self.speech_end, self.first_audio)

    def stage_ms(self) -> dict[str, float | None]:
        """Consecutive stages that add up to the voice-to-voice latency."""
        return {
            "end_of_turn": self._ms(self.speech_end, self.end_detected),
            "stt": None if self.transcript_final is None or self.end_detected is None
            else round(max(0.0, self.transcript_final - self.end_detected) * 1000.0, 1),
            "llm": self._ms(max(self.transcript_final or 0, self.end_detected or 0) or None,
                            self.first_phrase),
            "tts": None if (tts := self._ms(self.first_phrase, self.first_audio)) is None
            else round(tts - self.held_ms, 1),
            "hold": round(self.held_ms, 1) if self.first_audio is not None else None,
        }

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["voice_to_voice_ms"] = self.voice_to_voice_ms
        data["stage_ms"] = self.stage_ms()
        return data

    def summary(self) -> str:
        """A few readable lines for the console."""
        lines = [f"turn {self.turn}: you said: {self.transcript!r}"]
        if self.outcome == "announcement":
            return f"announcement: {self.reply!r}"
        if self.outcome in ("answered", "interrupted"):
            cut = " [interrupted]" if self.interrupted else ""
            lines.append(f"  assistant: {self.reply!r}{cut}")
            stages = self.stage_ms()
            parts = " · ".join(f"{k.replace('_', '-')} {v:.0f}" for k, v in stages.items() if v is not None)
            v2v = self.voice_to_voice_ms
            lines.append(f"  voice-to-voice {v2v:.0f} ms ({parts} ms)" if v2v is not None else "  (no audio)")
        elif self.outcome == "no-speech":
            lines.append("  (no words recognised: nothing to answer)")
        else:
            lines.append(f"  error: {self.error}")
        return "\n".join(lines)


def append_jsonl(path: Path, trace: TurnTrace) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(trace.to_json()) + "\n")
