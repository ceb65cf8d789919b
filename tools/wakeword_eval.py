"""Measure the wake word models: false rejects and false accepts per hour at several thresholds.

Positives: each wake phrase alone and followed by a request, spoken by the Piper voice (three
paces x two noise settings) and by eight espeak-ng voices, with white noise at 30 and 15 dB SNR.
Negatives: espeak-ng's voices reading the licence texts in /usr/share/common-licenses (wake words
removed) for --hours of audio. The probability trace of every clip is recorded once, so each
threshold is evaluated on the same audio. Writes a JSON report and prints a table.

    .venv/bin/python tools/wakeword_eval.py --hours 1 --json out/wakeword.json
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from glasses_assistant.audio.io import read_wav, resample
from glasses_assistant.audio.wakeword import WAKE_PHRASES, WAKE_WORDS, WakeWordDetector
from glasses_assistant.catalog import load_catalogue
from glasses_assistant.config import load_config
from glasses_assistant.engines.tts import PiperEngine
from glasses_assistant.pipeline import resolve_model

ESPEAK_VOICES = ["en-us", "en", "en-us+m3", "en+f3", "en-gb-x-rp+m7", "en-us+f2", "en+klatt", "en-gb-scotland"]
THRESHOLDS = [0.97, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5]
REFRACTORY_S = 2.0


def probabilities(detector: WakeWordDetector, audio: np.ndarray) -> tuple[np.ndarray, float]:
    """The detector's probability after every 512-sample chunk, and the chunk length in seconds."""
    detector.reset()
    out = []
    for i in range(0, len(audio) - 511, 512):
        detector.process(audio[i : i + 512])
        out.append(detector.last_probability)
    return np.asarray(out, np.float32), 512 / 16_000


def events(probs: np.ndarray, step_s: float, threshold: float) -> int:
    """Firings at ``threshold``, with the detector's refractory time between them."""
    count, quiet_until = 0, -1.0
    for i, p in enumerate(probs):
        t = i * step_s
        if p > threshold and t >= quiet_until:
            count += 1
            quiet_until = t + REFRACTORY_S
    return count


def espeak(text: str, voice: str, speed: int = 160) -> np.ndarray:
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        f.write(subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
                               capture_output=True, check=True).stdout)
        f.flush()
        audio, rate = read_wav(f.name)
    return resample(audio, rate, 16_000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0, help="hours of negative speech (default 1)")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    cfg = load_config()
    voice_path, _ = resolve_model(load_catalogue(), "tts", None)
    speakers: list[tuple[str, object]] = []
    for pace in (0.85, 1.0, 1.2):
        for noise in (0.333, 0.667):
            speakers.append((f"piper joe pace={pace} noise={noise}",
                             PiperEngine(voice_path, replace(cfg.tts, length_scale=pace, noise_scale=noise))))
    speakers += [(f"espeak {v}", v) for v in ESPEAK_VOICES]

    def say(speaker: object, text: str) -> np.ndarray:
        if isinstance(speaker, PiperEngine):
            return resample(speaker.synthesize(text), speaker.sample_rate, 16_000)
        return espeak(text, str(speaker))

    def in_noise(audio: np.ndarray, snr_db: float) -> np.ndarray:
        padded = np.concatenate([np.zeros(8000, np.float32), audio, np.zeros(8000, np.float32)])
        noise = rng.standard_normal(len(padded)).astype(np.float32)
        noise *= np.sqrt(np.mean(audio**2) / 10 ** (snr_db / 10) / np.mean(noise**2))
        return (padded + noise).astype(np.float32)

    detectors = {w: WakeWordDetector(w) for w in WAKE_WORDS}
    report: dict[str, dict] = {w: {"cutoff": d.threshold, "positives": [], "negatives_s": 0.0} for w, d in
                               detectors.items()}
    print("positives ...", flush=True)
    for w, det in detectors.items():
        phrase = WAKE_PHRASES[w].title()
        for name, speaker in speakers:
            for text in (f"{phrase}.", f"{phrase}, what time is it?"):
                clip = say(speaker, text)
                for snr in (30, 15):
                    probs, _ = probabilities(det, in_noise(clip, snr))
                    report[w]["positives"].append({"speaker": name, "text": text, "snr_db": snr,
                                                   "max_prob": float(probs.max(initial=0.0))})
    print("negatives ...", flush=True)
    texts = " ".join(Path(f).read_text(errors="ignore") for f in sorted(glob.glob("/usr/share/common-licenses/*"))
                     if Path(f).is_file())
    text = re.sub(r"(?i)\b(alexa|jarvis|mycroft|nabu)\b", "", re.sub(r"\s+", " ", texts))
    words = text.split()
    neg_probs: dict[str, list[np.ndarray]] = {w: [] for w in WAKE_WORDS}
    total_s, i, k, t0 = 0.0, 0, 0, time.time()
    while total_s < args.hours * 3600 and i < len(words):
        voice = ESPEAK_VOICES[k % len(ESPEAK_VOICES)]
        audio = espeak(" ".join(words[i : i + 400]), voice, speed=150 + 15 * (k % 3))
        i, k = i + 400, k + 1
        total_s += len(audio) / 16_000
        for w, det in detectors.items():
            neg_probs[w].append(probabilities(det, audio)[0])
        print(f"  {total_s / 3600:.2f} h of speech ({time.time() - t0:.0f} s)", flush=True)
    step = 512 / 16_000
    print(f"\n{'wake word':<12}{'threshold':>10}{'FR piper':>10}{'FR espeak':>11}{'FR all':>8}{'FA/h':>7}")
    for w in WAKE_WORDS:
        report[w]["negatives_s"] = total_s
        rows = []
        for th in sorted({*THRESHOLDS, report[w]["cutoff"]}, reverse=True):
            pos = report[w]["positives"]
            miss = [p for p in pos if p["max_prob"] <= th]
            fr_p = sum(p["speaker"].startswith("piper") for p in miss) / max(1, sum(
                p["speaker"].startswith("piper") for p in pos))
            fr_e = sum(p["speaker"].startswith("espeak") for p in miss) / max(1, sum(
                p["speaker"].startswith("espeak") for p in pos))
            fa = sum(events(p, step, th) for p in neg_probs[w])
            row = {"threshold": th, "false_reject_piper": round(fr_p, 3), "false_reject_espeak": round(fr_e, 3),
                   "false_reject_all": round(len(miss) / len(pos), 3), "false_accepts": fa,
                   "false_accepts_per_hour": round(fa / (total_s / 3600), 2)}
            rows.append(row)
            mark = " (model's cutoff)" if th == report[w]["cutoff"] else ""
            print(f"{w:<12}{th:>10.2f}{fr_p:>10.1%}{fr_e:>11.1%}{row['false_reject_all']:>8.1%}"
                  f"{row['false_accepts_per_hour']:>7.2f}{mark}")
        report[w]["sweep"] = rows
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"hours_negative": total_s / 3600, "models": report}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
