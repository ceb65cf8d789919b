"""`glasses-assistant bench`: voice-to-voice latency over N spoken prompts.

Each prompt is spoken by the TTS voice (at a few different paces) or read from
``--wav-dir``, played into the loop in real time like a microphone, and answered
into a WAV sink. Reported: p50/p95 of the voice-to-voice latency (the wearer's
last voiced sample to the first sample of reply audio) and of each stage, each
stage's share of the median, load time and peak memory; as a table and as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from .audio.io import SAMPLE_RATE, WavSink, WavSource, read_wav, resample
from .config import Config
from .pipeline import Assistant
from .trace import STAGES, TurnTrace

PROMPTS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What color is the sky?",
    "What is the capital of Japan?",
    "How many days are in a week?",
    "What is the largest planet in our solar system?",
    "What do bees make?",
    "How many hours are in a day?",
    "What is the boiling point of water?",
    "Which animal is known as the king of the jungle?",
    "What is the opposite of hot?",
    "How many continents are there?",
    "What language do people speak in Spain?",
    "What is the tallest animal in the world?",
    "Can you tell me a short joke?",
    "What is the main ingredient of guacamole?",
    "How many minutes are in an hour?",
    "What is the capital of Italy?",
    "What do you call a baby dog?",
    "Which season comes after winter?",
]
PACES = (1.0, 0.9, 1.1, 0.95, 1.05)


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of the values, None if empty."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def summarise(traces: list[TurnTrace]) -> dict[str, Any]:
    """p50/p95 of voice-to-voice and of each stage, and each stage's share of the median."""
    answered = [t for t in traces if t.voice_to_voice_ms is not None]
    v2v = [t.voice_to_voice_ms for t in answered]  # type: ignore[misc]
    stages: dict[str, dict[str, float | None]] = {}
    p50_total = percentile(v2v, 50) or 0.0  # type: ignore[arg-type]
    for stage in STAGES:
        vals = [t.stage_ms()[stage] for t in answered if t.stage_ms()[stage] is not None]
        p50 = percentile(vals, 50)  # type: ignore[arg-type]
        stages[stage] = {
            "p50_ms": _r(p50), "p95_ms": _r(percentile(vals, 95)),  # type: ignore[arg-type]
            "share_of_p50": _r(p50 / p50_total, 3) if p50 is not None and p50_total else None,
        }
    return {
        "turns": len(traces),
        "answered": len(answered),
        "voice_to_voice_ms": {"p50": _r(p50_total), "p95": _r(percentile(v2v, 95)),  # type: ignore[arg-type]
                              "min": _r(min(v2v, default=None)), "max": _r(max(v2v, default=None))},
        "stages": stages,
        "speculative_stt_used": sum(t.speculative_stt for t in answered),
    }


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def spoken_prompts(assistant: Assistant, n: int, wav_dir: Path | None) -> list[tuple[str, np.ndarray]]:
    """N prompts as 16 kHz audio: WAVs from ``wav_dir``, else spoken by the TTS voice."""
    if wav_dir is not None:
        files = sorted(wav_dir.glob("*.wav"))[:n]
        return [(f.stem, resample(*read_wav(f), SAMPLE_RATE)) for f in files]
    from dataclasses import replace

    from .engines.tts import PiperEngine

    assert assistant.tts is not None
    out = []
    voices: dict[float, PiperEngine] = {}
    for i in range(n):
        text = PROMPTS[i % len(PROMPTS)]
        pace = PACES[i % len(PACES)]
        if pace not in voices:
            cfg = replace(assistant.config.tts, length_scale=pace)
            voices[pace] = assistant.tts if pace == assistant.config.tts.length_scale else PiperEngine(
                assistant.model_paths["tts"], cfg)
        voice = voices[pace]
        out.append((text, resample(voice.synthesize(text), voice.sample_rate, SAMPLE_RATE)))
    return out


async def _one_turn(assistant: Assistant, audio: np.ndarray, sink_path: Path) -> list[TurnTrace]:
    assistant.conversation.clear()  # independent prompts: the same prompt length every time
    source = WavSource.from_samples([audio], realtime=True, gap_s=1.2, lead_s=0.3)
    return await assistant.serve(source, WavSink(sink_path))


def run_bench(config: Config, *, prompts: int = 20, json_path: Path | None = None,
              wav_dir: Path | None = None) -> int:
    """Run the benchmark, print the table, write JSON; return the exit status."""
    t_start = time.perf_counter()
    assistant = Assistant(config)
    load_s = assistant.load()
    ready_s = time.perf_counter() - t_start
    clips = spoken_prompts(assistant, prompts, wav_dir)
    traces: list[TurnTrace] = []
    rows = []
    print(f"running {len(clips)} spoken prompts in real time ...", flush=True)
    for i, (text, audio) in enumerate(clips, 1):
        turn = asyncio.run(_one_turn(assistant, audio, Path(os.devnull)))
        traces += turn
        for t in turn:
            rows.append({"prompt": text, **t.to_json()})
            print(f"  [{i:>2}/{len(clips)}] {t.voice_to_voice_ms or float('nan'):7.0f} ms  "
                  f"{t.transcript!r} -> {t.reply[:60]!r}", flush=True)
    assistant.close()
    report = {
        "benchmark": "voice-to-voice",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "models": assistant.model_ids,
        "threads": {"stt": config.stt.threads, "llm": config.llm.threads, "tts": config.tts.threads},
        "end_silence_ms": config.vad.end_silence_ms,
        "cold_start_s": round(ready_s, 2),
        "load_s": load_s,
        "peak_rss_mb": peak_rss_mb(),
        "summary": summarise(traces),
        "turns": rows,
    }
    print(format_table(report))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2))
        print(f"report: {json_path}")
    return 0 if report["summary"]["answered"] else 1


def format_table(report: dict[str, Any]) -> str:
    s = report["summary"]
    v = s["voice_to_voice_ms"]
    lines = [
        "",
        f"voice-to-voice latency over {s['answered']}/{s['turns']} answered turns "
        f"({report['machine']['cpus']} CPUs)",
        f"  {'stage':<14}{'p50 ms':>9}{'p95 ms':>9}{'share':>8}",
    ]
    for stage, st in s["stages"].items():
        share = f"{st['share_of_p50'] * 100:.0f}%" if st["share_of_p50"] is not None else "-"
        lines.append(f"  {stage:<14}{_f(st['p50_ms']):>9}{_f(st['p95_ms']):>9}{share:>8}")
    lines.append(f"  {'TOTAL':<14}{_f(v['p50']):>9}{_f(v['p95']):>9}")
    lines.append(f"  speculative transcripts used: {s['speculative_stt_used']}/{s['answered']}")
    lines.append(f"  cold start {report['cold_start_s']} s · peak RSS {report['peak_rss_mb']} MB")
    return "\n".join(lines)


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"
