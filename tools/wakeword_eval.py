# SPDX-License-Identifier: GPL-3.0-or-later
"""Measure the wake words on real recorded speech: false accepts per hour, false rejects per cutoff,
with and without the second stage (Whisper on the pre-roll), and what the second stage costs.

Negatives are real recordings that Debian packages ship (``make wake-eval`` installs them; see
SOURCES for each one's licence): real human speech (telephone prompts in five languages, game
dialogue in English, Czech and Dutch, children's-software words in twenty languages, game voice
actors) and real recorded non-speech sound (music on hold, game music, sound effects and alerts).
None of them says a wake phrase (the transcripts of every firing are in the JSON report).

Positives: each wake phrase alone and followed by a request, spoken by the Piper voice (three paces,
two variation settings) and by eight espeak-ng voices, each heard in five conditions: at the
glasses' microphone (about 10 cm) in quiet, with music on hold behind it (10 dB SNR) and with real
speech behind it (Czech dialogue as babble, 10 dB); and further away in a reverberant room (0.3 m
with music at 20 dB, 1 m in quiet). The room is :func:`glasses_assistant.audio.room.at_distance`.

The detector's probability trace of every stream is recorded once, so every cutoff is evaluated on
the same audio; each firing is then checked the way the listener checks it (the 1.5 s before the
firing scored by the loaded Whisper with the phrase forced, see :mod:`glasses_assistant.audio
.wake_verify`), the check's time is measured, and what Whisper itself would write is recorded.
Writes a JSON report (the measurements, then the summary) and prints the tables.

    .venv/bin/python tools/wakeword_eval.py --json out/wakeword.json      # make wake-eval
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from glasses_assistant.audio.io import read_wav, resample
from glasses_assistant.audio.room import at_distance
from glasses_assistant.audio.wake_verify import (
    SENSITIVITIES,
    TUNING,
    WAKE_CHECK_MS,
    WRITTEN,
    WakeTuning,
    firing_chunks,
    peak_after,
)
from glasses_assistant.audio.wakeword import WAKE_PHRASES, WAKE_WORDS, WakeWordDetector
from glasses_assistant.catalog import load_catalogue
from glasses_assistant.config import TtsConfig, load_config
from glasses_assistant.engines.stt import WhisperEngine
from glasses_assistant.engines.tts import PiperEngine

RATE = 16_000
CHUNK = 512
REFRACTORY_S = 2.0
REFRACTORY_CHUNKS = math.ceil(REFRACTORY_S * RATE / CHUNK)
CUTOFFS = [0.97, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.02]
SCORES = [-10.0, -9.0, -8.0, -7.5, -7.0, -6.5, -6.0, -5.5, -5.0, -4.5]
"""Second-stage cutoffs swept (the phrase's mean token log-probability)."""
ESPEAK_VOICES = ["en-us", "en", "en-us+m3", "en+f3", "en-gb-x-rp+m7", "en-us+f2", "en+klatt", "en-gb-scotland"]


@dataclass(frozen=True)
class Source:
    """Real recordings one Debian package ships."""

    name: str
    package: str
    pattern: str
    kind: str  # speech | sound
    language: str
    licence: str
    what: str


SOURCES = [
    Source("asterisk-en", "asterisk-core-sounds-en-wav", "/usr/share/asterisk/sounds/en_US_f_Allison/**/*.wav",
           "speech", "en", "CC-BY-SA-3.0",
           "Asterisk's telephone prompts read by Allison Smith (8 kHz): sentences, digits, letters"),
    Source("asterisk-es", "asterisk-core-sounds-es-wav", "/usr/share/asterisk/sounds/es_MX_f_Allison/**/*.wav",
           "speech", "es", "CC-BY-SA-3.0", "the same prompts in Mexican Spanish (Allison Smith)"),
    Source("asterisk-fr", "asterisk-core-sounds-fr-wav", "/usr/share/asterisk/sounds/fr_CA_f_June/**/*.wav",
           "speech", "fr", "CC-BY-SA-3.0", "the same prompts in Canadian French (June Wallack)"),
    Source("asterisk-it", "asterisk-core-sounds-it-wav", "/usr/share/asterisk/sounds/it_IT_m_Carlo/**/*.wav",
           "speech", "it", "CC-BY-3.0", "the same prompts in Italian (Carlo Flora, a male voice)"),
    Source("asterisk-ru", "asterisk-core-sounds-ru-wav",
           "/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU/**/*.wav", "speech", "ru", "CC-BY-3.0",
           "the same prompts in Russian (ivrvoice.ru)"),
    Source("fillets-en", "fillets-ng-data", "/usr/share/games/fillets-ng/sound/*/en/*.ogg", "speech", "en",
           "GPL-2+", "Fish Fillets NG: the game's English dialogue (two fish and a cast of characters)"),
    Source("fillets-cs", "fillets-ng-data-cs", "/usr/share/games/fillets-ng/sound/*/cs/*.ogg", "speech", "cs",
           "GPL-2+", "Fish Fillets NG: the original Czech dialogue, many actors, conversational"),
    Source("fillets-nl", "fillets-ng-data-nl", "/usr/share/games/fillets-ng/sound/*/nl/*.ogg", "speech", "nl",
           "GPL-2+", "Fish Fillets NG: the Dutch dialogue"),
    Source("hedgewars", "hedgewars-data", "/usr/share/games/hedgewars/Data/Sounds/voices/*/*.ogg", "speech",
           "en+", "GFDL-1.3", "Hedgewars voice packs: exclamations by a dozen voice actors, mostly English"),
    Source("ktuberling", "ktuberling-data", "/usr/share/ktuberling/sounds/*/*.ogg", "speech", "20 languages",
           "GPL-2+", "KTuberling: words for children, spoken in twenty languages"),
    Source("klettres", "klettres-data", "/usr/share/klettres/*/*/*.ogg", "speech", "25 languages", "GPL-2+",
           "KLettres: letters and syllables read in twenty-five languages"),
    Source("alsa", "alsa-utils", "/usr/share/sounds/alsa/*.wav", "speech", "en", "GPL-2",
           "ALSA's speaker test voice ('Front left', 'Rear right', ...)"),
    Source("music-on-hold", "asterisk-moh-opsound-wav", "/usr/share/asterisk/moh/*.wav", "sound", "-",
           "CC-BY-SA-3.0", "Asterisk's music on hold (opsound.org: electronic, acoustic)"),
    Source("fillets-music", "fillets-ng-data", "/usr/share/games/fillets-ng/music/*.ogg", "sound", "-", "GPL-2+",
           "Fish Fillets NG's music"),
    Source("effects", "hedgewars-data", "/usr/share/games/hedgewars/Data/Sounds/*.ogg", "sound", "-",
           "GFDL-1.3, CC-BY-SA-3.0", "Hedgewars' sound effects (explosions, water, steps; some from freesound)"),
    Source("desktop", "sound-theme-freedesktop", "/usr/share/sounds/freedesktop/stereo/*.oga", "sound", "-",
           "CC-BY-SA-3.0, GPL-2+", "the freedesktop.org sound theme (alerts, bells)"),
]
"""Every recording the negatives use; ``make wake-eval`` installs the packages (none at run time)."""


# ---------------------------------------------------------------------------- audio
def decode(path: str) -> np.ndarray | None:
    """A recording as 16 kHz mono float32 (PyAV, which faster-whisper brings); None if undecodable."""
    from faster_whisper import decode_audio

    try:
        return np.asarray(decode_audio(path, sampling_rate=RATE), np.float32)
    except Exception:  # a few KLettres files use a codec variant FFmpeg does not implement
        return None


def trimmed(audio: np.ndarray, floor_db: float = -45.0) -> np.ndarray:
    """Without the silence before and after (0.1 s kept), so an hour is mostly sound."""
    loud = np.flatnonzero(np.abs(audio) > 10 ** (floor_db / 20))
    return audio[max(0, loud[0] - 1600): loud[-1] + 1600] if len(loud) else audio[:0]


def stream(source: Source, gap_s: float = 1.5) -> tuple[np.ndarray, list[tuple[float, str]], int, float]:
    """One source's recordings, one after another, ``gap_s`` of a quiet room (-60 dBFS) between them.

    The pause matters: the detector is far readier to fire on the first words after a second
    of quiet than on words that follow other speech (conf-onlyperson.wav reaches 0.95 alone and
    0.03 right after another prompt), and people pause between sentences. Returns (audio,
    [(start s, file)], undecodable files, seconds of recorded sound, the gaps not counted).
    """
    parts: list[np.ndarray] = []
    starts: list[tuple[float, str]] = []
    bad, pos, recorded = 0, 0, 0
    rng = np.random.default_rng(0)
    for path in sorted(glob.glob(source.pattern, recursive=True)):
        audio = decode(path)
        if audio is None:
            bad += 1
            continue
        audio = trimmed(audio)
        if not len(audio):
            continue
        gap = (rng.standard_normal(int(gap_s * RATE)) * 0.001).astype(np.float32)
        starts.append(((pos + len(gap)) / RATE, path))
        parts += [gap, audio]
        pos += len(gap) + len(audio)
        recorded += len(audio)
    audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return audio, starts, bad, recorded / RATE


def probabilities(detector: WakeWordDetector, audio: np.ndarray) -> np.ndarray:
    """The detector's probability after every 512-sample chunk."""
    detector.reset()
    out = np.zeros(len(audio) // CHUNK, np.float32)
    for i in range(len(out)):
        detector.process(audio[i * CHUNK: (i + 1) * CHUNK])
        out[i] = detector.last_probability
    return out


def firings(probs: np.ndarray, cutoff: float) -> list[int]:
    """Chunks at which the detector fires at ``cutoff``, quiet for its refractory time after each."""
    return firing_chunks(probs.tolist(), cutoff, REFRACTORY_CHUNKS)


def pre_roll(audio: np.ndarray, chunk: int) -> np.ndarray:
    """What the listener hands the second stage when the detector fires at ``chunk``."""
    end = (chunk + 1) * CHUNK
    n = -(-WAKE_CHECK_MS // 32) * CHUNK
    return audio[max(0, end - n): end]


def espeak(text: str, voice: str, speed: int = 160) -> np.ndarray:
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        f.write(subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
                               capture_output=True, check=True).stdout)
        f.flush()
        audio, rate = read_wav(f.name)
    return resample(audio, rate, RATE)


def mix(speech: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``speech`` (padded with 1 s before and 0.5 s after) over a random stretch of ``noise``."""
    padded = np.concatenate([np.zeros(RATE, np.float32), speech, np.zeros(RATE // 2, np.float32)])
    start = int(rng.integers(0, max(1, len(noise) - len(padded))))
    bed = np.resize(noise[start: start + len(padded)], len(padded)).astype(np.float32)
    level = np.sqrt(np.mean(speech**2) / 10 ** (snr_db / 10) / max(1e-12, float(np.mean(bed**2))))
    return (padded + bed * level).astype(np.float32)


def poisson_upper(k: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of a Poisson mean after ``k`` events (k=0: 3.0)."""
    lo, hi = 0.0, 10.0 + 10 * k
    for _ in range(100):
        lam = (lo + hi) / 2
        cdf = sum(math.exp(-lam + i * math.log(lam) - math.lgamma(i + 1)) for i in range(k + 1))
        lo, hi = (lam, hi) if cdf > 1 - confidence else (lo, lam)
    return hi


# ---------------------------------------------------------------------------- the run
@dataclass
class Clip:
    """One positive: a wake phrase in one voice and one condition."""

    word: str
    speaker: str
    text: str
    condition: str
    audio: np.ndarray


def positives(cfg_tts: TtsConfig, voice_path: Path, noises: dict[str, np.ndarray]) -> Iterator[Clip]:
    rng = np.random.default_rng(1)
    voices: list[tuple[str, object]] = []
    for pace in (0.85, 1.0, 1.2):
        for variation in (0.333, 0.667):
            voices.append((f"piper joe pace={pace} noise={variation}",
                           PiperEngine(voice_path, replace(cfg_tts, length_scale=pace, noise_scale=variation))))
    voices += [(f"espeak {v}", v) for v in ESPEAK_VOICES]
    white = rng.standard_normal(RATE * 30).astype(np.float32)
    for word in WAKE_WORDS:
        phrase = WAKE_PHRASES[word].title()
        for name, voice in voices:
            for text in (f"{phrase}.", f"{phrase}, what time is it?"):
                if isinstance(voice, PiperEngine):
                    dry = resample(voice.synthesize(text), voice.sample_rate, RATE)
                else:
                    dry = espeak(text, str(voice))
                dry = dry * (0.1 / max(1e-6, float(np.sqrt(np.mean(dry**2)))))  # -20 dBFS, as at the glasses
                # At the glasses (the wearer's own voice, about 10 cm from the microphone) ...
                yield Clip(word, name, text, "close, quiet", mix(dry, white, 40, rng))
                yield Clip(word, name, text, "close, music 10 dB", mix(dry, noises["music"], 10, rng))
                yield Clip(word, name, text, "close, babble 10 dB", mix(dry, noises["babble"], 10, rng))
                # ... and further away, in a reverberant room.
                yield Clip(word, name, text, "0.3 m room, music 20 dB",
                           mix(at_distance(dry, 0.3, seed=len(text)), noises["music"], 20, rng))
                yield Clip(word, name, text, "1 m room, quiet",
                           mix(at_distance(dry, 1.0, seed=len(text) + 1), white, 30, rng))


BEFORE = WakeTuning(0.1, -5.0)
"""hey_mycroft's normal tuning before the peak check (stop 28), for ``--loop``'s side-by-side row."""


def loop_latency(n: int) -> dict:
    """Wake-to-listening through the real hands-free loop, in one run: the second stage off, on
    (the shipped tuning) and on as it was before the peak check (:data:`BEFORE`).

    ``n`` wake phrases (the Piper voice at three paces) are played in real time into one loaded
    assistant, each in every mode, rotating which goes first; the listener records the time from the
    capture of the chunk the detector first fired on to listening (a peak tuning's wait included).
    """
    import asyncio

    from glasses_assistant.audio import wake_verify
    from glasses_assistant.audio.io import WavSink, WavSource
    from glasses_assistant.config import with_overrides
    from glasses_assistant.pipeline import Assistant

    with tempfile.TemporaryDirectory() as home:
        base = load_config(overrides={"memory": {"path": str(Path(home) / "memory.db")},
                                      "listen": {"timeout_s": 1.0, "follow_up_s": 0.0}})
        assistant = Assistant(base)
        assistant.load()
        try:
            voices = [PiperEngine(assistant.model_paths["tts"], replace(base.tts, length_scale=pace))
                      for pace in (0.85, 1.0, 1.2)]
            clips = [resample(v.synthesize("Hey Mycroft."), v.sample_rate, RATE) for v in voices]
            got: dict[str, list[float]] = {"off": [], "on": [], "before": []}
            shipped = wake_verify.TUNING["hey_mycroft"]["normal"]
            modes = list(got)
            for i in range(n):
                for mode in modes[i % 3:] + modes[:i % 3]:
                    assistant.config = with_overrides(base, listen={"wake_verify": mode != "off"})
                    wake_verify.TUNING["hey_mycroft"]["normal"] = BEFORE if mode == "before" else shipped
                    stats = assistant.stats
                    before = len(stats.wake_to_listening_s)
                    source = WavSource.from_samples([clips[i % len(clips)]], realtime=True, gap_s=2.0)
                    asyncio.run(assistant.serve(source, WavSink(Path(home) / "reply.wav"), listen_mode="wake"))
                    got[mode] += stats.wake_to_listening_s[before:]
        finally:
            wake_verify.TUNING["hey_mycroft"]["normal"] = shipped
            assistant.close()
    out: dict = {"n": n}
    for mode, values in got.items():
        out[mode] = {"woke": len(values), "median_ms": round(statistics.median(values) * 1000, 1) if values else None,
                     "max_ms": round(max(values) * 1000, 1) if values else None}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--words", default=",".join(WAKE_WORDS), help="comma-separated wake words (default all)")
    parser.add_argument("--max-hours", type=float, default=0.0, help="cap each source at this many hours (0: all)")
    parser.add_argument("--loop", type=int, default=0, metavar="N",
                        help="only measure wake-to-listening through the loop, check off and on, N times each")
    parser.add_argument("--from-json", type=Path, help="summarise an earlier run's report again (no audio)")
    args = parser.parse_args()
    if args.from_json:
        return report(json.loads(args.from_json.read_text()), args.json)
    if args.loop:
        result = loop_latency(args.loop)
        print(json.dumps(result, indent=1))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1))
        return 0
    words = [w for w in args.words.split(",") if w]
    if unknown := [w for w in words if w not in WAKE_WORDS]:
        print(f"wakeword_eval: error: unknown wake word {unknown[0]!r}", file=sys.stderr)
        return 2
    missing = sorted({s.package for s in SOURCES if not glob.glob(s.pattern, recursive=True)})
    if missing:
        print(f"wakeword_eval: error: install the evaluation recordings first: apt-get install {' '.join(missing)}"
              " (or: make wake-eval)", file=sys.stderr)
        return 2
    cfg = load_config()
    catalogue = load_catalogue()
    stt = WhisperEngine(catalogue.resolve("stt", None)[0], cfg.stt)
    stt.transcribe_clip(np.zeros(RATE, np.float32))
    detectors = {w: WakeWordDetector(w, threshold=0.999) for w in words}
    checked: dict[tuple[str, int], tuple[str, float, float]] = {}

    def check(key: str, word: str, audio: np.ndarray, chunk: int) -> tuple[str, float, float]:
        """(what Whisper writes, the phrase's score, the seconds the score took) for one firing."""
        if (key, chunk) not in checked:
            clip = pre_roll(audio, chunk)
            t0 = time.perf_counter()
            score = max(stt.phrase_scores(clip, WRITTEN[word]))
            took = time.perf_counter() - t0
            checked[key, chunk] = (stt.transcribe_clip(clip), round(score, 3), took)
        return checked[key, chunk]

    def at_peak(key: str, word: str, audio: np.ndarray, probs: np.ndarray, k: int) -> dict:
        """The same firing as a ``peak`` tuning checks it: once the detector's probability peaked."""
        j, top = peak_after(probs.tolist(), k)
        heard, score, _took = check(key, word, audio, j)
        return {"peak_wait": j - k, "top": round(top, 3), "peak_score": score, "peak_heard": heard}

    # Negatives: every firing at every cutoff, checked (on the firing's chunk and at its peak).
    t_start = time.time()
    neg: dict[str, dict] = {}
    noises: dict[str, np.ndarray] = {}
    for source in SOURCES:
        audio, starts, bad, recorded_s = stream(source)
        if args.max_hours and recorded_s > args.max_hours * 3600:
            cut = int(len(audio) * args.max_hours * 3600 / recorded_s)
            audio, recorded_s = audio[:cut], args.max_hours * 3600
        if source.name == "music-on-hold":
            noises["music"] = audio
        if source.name == "fillets-cs":
            noises["babble"] = trimmed(audio[: RATE * 900])
        # Only the recordings count as hours, not the quiet put between them.
        entry: dict = {"kind": source.kind, "hours": recorded_s / 3600, "files": len(starts),
                       "undecodable": bad, "firings": {}}
        for word, det in detectors.items():
            probs = probabilities(det, audio)
            fired: dict[int, dict] = {}
            for cutoff in CUTOFFS:
                for k in firings(probs, cutoff):
                    if k not in fired:
                        text, score, took = check(f"{source.name}/{word}", word, audio, k)
                        fired[k] = {"t_s": round(k * CHUNK / RATE, 2), "p": round(float(probs[k]), 3),
                                    "file": next((f for s, f in reversed(starts) if s <= k * CHUNK / RATE), ""),
                                    "heard": text, "score": score, "check_s": round(took, 3), "cutoffs": [],
                                    **at_peak(f"{source.name}/{word}", word, audio, probs, k)}
                    fired[k]["cutoffs"].append(cutoff)
            entry["firings"][word] = list(fired.values())
        neg[source.name] = entry
        print(f"  {source.name:<14} {entry['hours']:.2f} h, {len(starts)} files ({bad} undecodable), "
              f"{time.time() - t_start:.0f} s", flush=True)

    # Positives.
    voice_path = catalogue.resolve("tts", None)[0]
    pos: list[dict] = []
    for n, clip in enumerate(positives(cfg.tts, voice_path, noises)):
        if clip.word not in detectors:
            continue
        probs = probabilities(detectors[clip.word], clip.audio)
        result = {"word": clip.word, "speaker": clip.speaker, "text": clip.text, "condition": clip.condition,
                  "max_p": round(float(probs.max(initial=0.0)), 3), "firings": {}}
        for cutoff in CUTOFFS:
            result["firings"][str(cutoff)] = []
            for k in firings(probs, cutoff):
                text, score, took = check(f"pos{n}", clip.word, clip.audio, k)
                result["firings"][str(cutoff)].append({"heard": text, "score": score, "check_s": round(took, 3),
                                                       "p": round(float(probs[k]), 3),
                                                       **at_peak(f"pos{n}", clip.word, clip.audio, probs, k)})
        pos.append(result)
    print(f"  positives: {len(pos)} clips, {time.time() - t_start:.0f} s", flush=True)

    raw = {"words": words, "negatives": neg, "positives": pos, "check_s": [t for *_, t in checked.values()],
           "sources": [s.__dict__ for s in SOURCES]}
    if args.json:  # the measurements first: the summary can be redone from them (--from-json)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(raw, indent=1))
    return report(raw, args.json)


def report(raw: dict, path: Path | None) -> int:
    """Summarise the measurements, print the tables, and save both."""
    raw["summary"] = summarise(raw["words"], raw["negatives"], raw["positives"], raw["check_s"])
    print_tables(raw["summary"])
    if path is not None:
        path.write_text(json.dumps(raw, indent=1))
    return 0


# ---------------------------------------------------------------------------- the report
def accepts(f: dict, t: WakeTuning) -> bool:
    """Whether the listener wakes on firing ``f`` with tuning ``t`` (its check: on the firing's
    chunk, or at its peak; the bar by how sure the detector was)."""
    if t.peak:
        return f["peak_score"] >= t.min_score_at(f["top"])
    return f["score"] >= t.min_score_at(f["p"])


def false_accepts(neg: dict, word: str, kinds: set[str], cutoff: float, min_score: float | None,
                  names: set[str] | None = None, at: str = "score") -> tuple[int, float]:
    """(false accepts, hours) over the negative sources of ``kinds`` (and ``names``), checked on the
    firing's chunk (``at="score"``) or at its peak (``"peak_score"``)."""
    count, hours = 0, 0.0
    for name, entry in neg.items():
        if entry["kind"] not in kinds or (names is not None and name not in names):
            continue
        hours += entry["hours"]
        for f in entry["firings"][word]:
            if cutoff in f["cutoffs"] and (min_score is None or f[at] >= min_score):
                count += 1
    return count, hours


def missed(clips: list[dict], cutoff: float, min_score: float | None, at: str = "score") -> int:
    """Positives the wake word missed: no firing at ``cutoff`` (that the second stage accepted)."""
    return sum(not any(min_score is None or f[at] >= min_score for f in c["firings"][str(cutoff)])
               for c in clips)


def tuned(neg: dict, clips: list[dict], word: str, t: WakeTuning) -> dict:
    """One sensitivity's tuning scored as the listener applies it (tiers, peak)."""
    fa, hours = 0, 0.0
    best: dict[str, float] = {}
    for entry in neg.values():
        hours += entry["hours"]
        for f in entry["firings"][word]:
            if t.cutoff not in f["cutoffs"]:
                continue
            fa += accepts(f, t)
            level = f["top"] if t.peak else f["p"]
            band = next(b for b in ("0.9", "0.5", "0") if level > float(b) or b == "0")
            best[band] = max(best.get(band, -99.0), f["peak_score" if t.peak else "score"])
    woke = [next((f for f in c["firings"][str(t.cutoff)] if accepts(f, t)), None) for c in clips]
    waits = sorted(f["peak_wait"] * 32 for f in woke if f is not None) if t.peak else []
    return {"tuning": {**t.__dict__, "tiers": [list(x) for x in t.tiers]}, "false_accepts": fa,
            "fa_per_hour": round(fa / max(hours, 1e-9), 3),
            "fa_per_hour_upper95": round(poisson_upper(fa) / max(hours, 1e-9), 3),
            "false_reject": round(sum(f is None for f in woke) / max(1, len(clips)), 4),
            "missed": sum(f is None for f in woke), "positives": len(clips),
            "best_false_score_by_detector_level": best,
            "peak_wait_ms_median": statistics.median(waits) if waits else None,
            "peak_wait_ms_max": max(waits) if waits else None}


def summarise(words: list[str], neg: dict, pos: list[dict], check_s: list[float]) -> dict:
    english = {n for n in neg if n in ("asterisk-en", "fillets-en", "hedgewars", "alsa")}
    out: dict = {"hours": {"speech": sum(e["hours"] for e in neg.values() if e["kind"] == "speech"),
                           "english speech": sum(neg[n]["hours"] for n in english),
                           "sound": sum(e["hours"] for e in neg.values() if e["kind"] == "sound")},
                 "words": {}}
    times = sorted(check_s)
    out["check_s"] = {"n": len(times), "median": statistics.median(times) if times else None,
                      "p95": times[max(0, math.ceil(0.95 * len(times)) - 1)] if times else None}
    for word in words:
        clips = [c for c in pos if c["word"] == word]
        rows = []
        for (cutoff, at), min_score in itertools.product(
                itertools.product(CUTOFFS, ("score", "peak_score")), [None, *SCORES]):
            if at == "peak_score" and min_score is None:
                continue
            fa, h = false_accepts(neg, word, {"speech", "sound"}, cutoff, min_score, at=at)
            fa_s, h_s = false_accepts(neg, word, {"speech"}, cutoff, min_score, at=at)
            fa_en, h_en = false_accepts(neg, word, {"speech"}, cutoff, min_score, english, at=at)
            row = {"cutoff": cutoff, "min_score": min_score, "check_at": "peak" if at == "peak_score" else "firing",
                   "false_accepts": fa, "hours": round(h, 3),
                   "fa_per_hour": round(fa / h, 3), "fa_per_hour_upper95": round(poisson_upper(fa) / h, 3),
                   "fa_speech": fa_s, "fa_english": fa_en, "fa_sound": fa - fa_s,
                   "false_reject": round(missed(clips, cutoff, min_score, at) / max(1, len(clips)), 4)}
            for group in ("piper", "espeak"):
                sub = [c for c in clips if c["speaker"].startswith(group)]
                row[f"false_reject_{group}"] = round(missed(sub, cutoff, min_score, at) / max(1, len(sub)), 4)
            for cond in sorted({c["condition"] for c in clips}):
                sub = [c for c in clips if c["condition"] == cond]
                row[f"false_reject [{cond}]"] = round(missed(sub, cutoff, min_score, at) / max(1, len(sub)), 4)
            rows.append(row)
        chosen = {s: tuned(neg, clips, word, TUNING[word][s]) for s in SENSITIVITIES}
        out["words"][word] = {"positives": len(clips), "sweep": rows, "tuning": chosen}
    return out


def print_tables(report: dict) -> None:
    h = report["hours"]
    print(f"\nnegatives: {h['speech']:.2f} h of real speech ({h['english speech']:.2f} h English), "
          f"{h['sound']:.2f} h of real non-speech sound")
    c = report["check_s"]
    if c["n"]:
        print(f"second-stage check: median {c['median'] * 1000:.0f} ms, p95 {c['p95'] * 1000:.0f} ms over {c['n']}")
    print(f"\n{'word':<12}{'cutoff':>7}{'check':>6}{'FR all':>8}{'FR piper':>9}{'FR espeak':>10}"
          f"{'FA':>4}{'FA/h':>7}{'95% up':>8}{'FA en':>6}{'FA snd':>7}")
    for word, w in report["words"].items():
        for r in w["sweep"]:
            if r["min_score"] not in (None, -7.0, -6.5, -5.5) or r.get("check_at") == "peak":
                continue
            m = "off" if r["min_score"] is None else f"{r['min_score']:.1f}"
            print(f"{word:<12}{r['cutoff']:>7.2f}{m:>6}{r['false_reject']:>8.1%}{r['false_reject_piper']:>9.1%}"
                  f"{r['false_reject_espeak']:>10.1%}{r['false_accepts']:>4}{r['fa_per_hour']:>7.2f}"
                  f"{r['fa_per_hour_upper95']:>8.2f}{r['fa_english']:>6}{r['fa_sound']:>7}")
    print("\nchecked at the detector's peak (the listener's `peak` tunings), per cutoff and bar:")
    print(f"{'word':<12}{'cutoff':>7}{'check':>6}{'FR all':>8}{'FA':>4}{'95% up':>8}")
    for word, w in report["words"].items():
        for r in w["sweep"]:
            if r.get("check_at") == "peak" and r["cutoff"] <= 0.5 and r["min_score"] >= -7.0:
                print(f"{word:<12}{r['cutoff']:>7.2f}{r['min_score']:>6.1f}{r['false_reject']:>8.1%}"
                      f"{r['false_accepts']:>4}{r['fa_per_hour_upper95']:>8.2f}")
    print("\nthe shipped tunings, as the listener applies them:")
    for word, w in report["words"].items():
        for name, r in w["tuning"].items():
            t = r["tuning"]
            wait = "" if r["peak_wait_ms_median"] is None else \
                f"; waits for the peak {r['peak_wait_ms_median']:.0f} ms median (max {r['peak_wait_ms_max']:.0f})"
            print(f"{word:<12}{name:<7} cutoff {t['cutoff']} bar {t['min_score']} tiers {t['tiers']} "
                  f"peak {t['peak']}: missed {r['missed']}/{r['positives']} ({r['false_reject']:.1%}), "
                  f"FA {r['false_accepts']} ({r['fa_per_hour']:.2f}/h, 95 % up {r['fa_per_hour_upper95']:.2f}); "
                  f"best false score by detector level {r['best_false_score_by_detector_level']}{wait}")


if __name__ == "__main__":
    raise SystemExit(main())
