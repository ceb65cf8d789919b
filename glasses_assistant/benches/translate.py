# SPDX-License-Identifier: GPL-3.0-or-later
"""Translation benchmark: chrF (sacrebleu) per engine and model on the traveller test set,
and end-of-speech -> first translated audio through the real loop in conversation mode.

``glasses-assistant translate-bench`` runs it; ``--json`` keeps the report.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..config import SHIPPED_LLMS, Config
from ..translate.languages import name

LANGS = ("fr", "es", "de")
DEFAULT_MODELS = SHIPPED_LLMS


@dataclass(frozen=True)
class Phrase:
    category: str
    text: dict[str, str]
    """language code -> the phrase in that language (en plus fr, es, de)."""


def load_testset(path: Path | None = None) -> list[Phrase]:
    """The parallel test set (``testset.tsv``: category, en, fr, es, de)."""
    raw = (path.read_text(encoding="utf-8") if path is not None else
           resources.files("glasses_assistant.translate").joinpath("testset.tsv").read_text(encoding="utf-8"))
    phrases = []
    for line in raw.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cat, en, fr, es, de = line.split("\t")
        phrases.append(Phrase(cat, {"en": en, "fr": fr, "es": es, "de": de}))
    return phrases


def chrf(hyps: list[str], refs: list[str]) -> float:
    import sacrebleu

    return round(float(sacrebleu.corpus_chrf(hyps, [refs]).score), 1)


def _examples(phrases: list[Phrase], src: str, hyps: list[str]) -> list[list[str]]:
    return [[p.text[src], h] for p, h in zip(phrases[:3], hyps[:3], strict=True)]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 3)


def score_translator(translate: Callable[[str, str, str], Any], phrases: list[Phrase], langs: tuple[str, ...],
                     progress: Callable[[str], None]) -> dict[str, Any]:
    """chrF of X->en and en->X for each language, with the median time per phrase."""
    out: dict[str, Any] = {}
    for lang in langs:
        for src, tgt in ((lang, "en"), ("en", lang)):
            hyps, times, failed = [], [], 0
            for p in phrases:
                t0 = time.perf_counter()
                tr = translate(p.text[src], src, tgt)
                times.append(time.perf_counter() - t0)
                hyps.append(tr.text if tr.ok else "")
                failed += 0 if tr.ok else 1
            key = f"{src}->{tgt}"
            out[key] = {"chrf": chrf(hyps, [p.text[tgt] for p in phrases]), "median_s": _pct(times, 0.5),
                        "refused": failed, "examples": _examples(phrases, src, hyps)}
            progress(f"    {key}: chrF {out[key]['chrf']:5.1f}  median {out[key]['median_s']:.2f} s/phrase"
                     + (f"  ({failed} refused)" if failed else ""))
    return out


def espeak_clip(catalogue: Any, config: Config, lang: str, text: str) -> np.ndarray:
    """16 kHz speech of ``text`` in piper-tts's espeak-ng voice for ``lang``."""
    from ..audio.io import SAMPLE_RATE, resample
    from ..engines.voices import open_voice

    voice = open_voice(f"espeak-ng:{lang}", catalogue, config.tts)
    return resample(voice.synthesize(text), voice.sample_rate, SAMPLE_RATE)


def run_translate_bench(config: Config, *, models: tuple[str, ...] = DEFAULT_MODELS, whisper: bool = True,
                        latency: int = 8, langs: tuple[str, ...] = LANGS, json_path: Path | None = None,
                        testset: Path | None = None, progress: Callable[[str], None] = print) -> dict[str, Any]:
    from ..catalog import load_catalogue
    from ..errors import ModelMissingError
    from ..translate.factory import open_translator

    catalogue = load_catalogue(cache_dir=Path(config.models_dir).expanduser() if config.models_dir else None)
    phrases = load_testset(testset)
    report: dict[str, Any] = {"phrases_per_language": len(phrases), "languages": list(langs), "chrf": [],
                              "machine": _machine()}
    progress(f"test set: {len(phrases)} phrases x {len(langs)} languages, both directions (sacrebleu chrF)")
    for model in models:
        progress(f"  llm {model}")
        try:
            translator = open_translator(config, catalogue, model=model)
        except ModelMissingError as err:
            progress(f"    skipped: {err}")
            report["chrf"].append({"engine": "llm", "model": model, "skipped": str(err)})
            continue
        scores = score_translator(translator.translate, phrases, langs, progress)
        report["chrf"].append({"engine": "llm", "model": translator.model, "scores": scores})
        del translator
        gc.collect()
    if whisper:
        report["chrf"].append(_whisper_scores(config, catalogue, phrases, langs, progress))
    if latency > 0:
        report["latency"] = _latency(config, catalogue, phrases, langs, latency, progress)
    _print_table(report, progress)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        progress(f"report: {json_path}")
    return report


def _whisper_scores(config: Config, catalogue: Any, phrases: list[Phrase], langs: tuple[str, ...],
                    progress: Callable[[str], None]) -> dict[str, Any]:
    """Whisper's speech-to-English on the source phrases spoken by espeak-ng (X->en only)."""
    from ..engines.stt import WhisperEngine

    path, model_id = catalogue.resolve("stt", config.translate.stt_model)
    stt = WhisperEngine(path, config.stt)
    progress(f"  whisper {model_id} (task=translate, speech by espeak-ng, language given)")
    scores: dict[str, Any] = {}
    for lang in langs:
        hyps, times = [], []
        for p in phrases:
            clip = espeak_clip(catalogue, config, lang, p.text[lang])
            t0 = time.perf_counter()
            hyps.append(stt.transcribe(clip, language=lang, task="translate").text)
            times.append(time.perf_counter() - t0)
        key = f"{lang}->en"
        scores[key] = {"chrf": chrf(hyps, [p.text["en"] for p in phrases]), "median_s": _pct(times, 0.5),
                       "refused": 0, "examples": _examples(phrases, lang, hyps)}
        progress(f"    {key}: chrF {scores[key]['chrf']:5.1f}  median {scores[key]['median_s']:.2f} s/phrase")
    return {"engine": "whisper", "model": model_id, "scores": scores}


def _latency(config: Config, catalogue: Any, phrases: list[Phrase], langs: tuple[str, ...], n: int,
             progress: Callable[[str], None]) -> dict[str, Any]:
    """End of the partner's speech -> first translated audio, through the real loop (real time)."""
    from ..audio.io import WavSink, WavSource
    from ..pipeline import Assistant

    assistant = Assistant(config, catalogue)
    assistant.load()
    lat: list[float] = []
    stages: dict[str, list[float]] = {}
    outcomes: dict[str, int] = {}
    progress(f"  latency: {n} spoken phrases per language through the loop in conversation mode "
             f"(model {config.translate.model}, partner language named)")
    try:
        for lang in langs:
            said = asyncio.run(assistant.start_translation(lang, None))
            clips = [espeak_clip(catalogue, config, lang, p.text[lang]) for p in phrases[:n]]
            sink = WavSink(Path("out") / f"translate-bench-{lang}.wav")
            traces = asyncio.run(assistant.serve(WavSource.from_samples(clips, realtime=True, gap_s=1.5), sink))
            for t in traces:
                outcome = str((t.translation or {}).get("outcome", t.outcome))
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if outcome == "translated" and t.first_audio is not None and t.speech_end is not None:
                    lat.append(t.first_audio - t.speech_end)
                    for stage, ms in t.stage_ms().items():  # llm: the translation
                        if ms is not None:
                            stages.setdefault("translate" if stage == "llm" else stage, []).append(ms / 1000)
            assistant.stop_translation()
            progress(f"    {name(lang)}: {said} {len(traces)} turns")
    finally:
        assistant.close()
    return {"n": len(lat), "p50_s": _pct(lat, 0.5), "p95_s": _pct(lat, 0.95),
            "mean_s": round(statistics.fmean(lat), 3) if lat else None, "outcomes": outcomes,
            "stage_p50_s": {k: _pct(v, 0.5) for k, v in stages.items()},
            "model": config.translate.model, "stt": config.translate.stt_model}


def _machine() -> dict[str, Any]:
    import os
    import platform

    return {"cpus": os.cpu_count(), "machine": platform.machine(), "load_avg": list(os.getloadavg())}


def _print_table(report: dict[str, Any], progress: Callable[[str], None]) -> None:
    langs = report["languages"]
    cols = [f"{lang}->en" for lang in langs] + [f"en->{lang}" for lang in langs]
    progress("")
    progress(f"{'engine':<8} {'model':<30} " + " ".join(f"{c:>7}" for c in cols) + "   s/phrase")
    for row in report["chrf"]:
        if "skipped" in row:
            progress(f"{row['engine']:<8} {row['model']:<30} (not fetched: glasses-assistant models fetch "
                     f"{row['model']})")
            continue
        s = row["scores"]
        cells = " ".join(f"{s[c]['chrf']:>7.1f}" if c in s else f"{'-':>7}" for c in cols)
        med = statistics.median([v["median_s"] for v in s.values()])
        progress(f"{row['engine']:<8} {row['model']:<30} {cells}   {med:.2f}")
    lat = report.get("latency")
    if lat:
        progress(f"\nend of speech -> first translated audio: p50 {lat['p50_s']} s, p95 {lat['p95_s']} s "
                 f"over {lat['n']} translated turns ({lat['outcomes']})")
        progress("  median stages: " + ", ".join(f"{k} {v} s" for k, v in lat.get("stage_p50_s", {}).items()))
