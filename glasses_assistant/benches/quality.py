# SPDX-License-Identifier: GPL-3.0-or-later
"""`glasses-assistant quality-bench` (and `bench --quality`): are the answers right?

The question set (``quality.tsv`` beside this file) holds short questions of the kinds a
wearer asks: facts, arithmetic, unit conversions, dates and times, definitions, how-to,
spelling, and questions nobody could answer from here ("what is my neighbour's name?"),
where an honest "I don't know" is the right answer and anything else is an invention.
Each has a checkable expected answer (see the file's header for the notation).

Each model answers every question twice through the product's own path: typed (the
routing table, as `run --text`), and spoken (Piper says the question, the real loop hears
it in real time: VAD, end of turn, Whisper, so recognition errors count). Reported per
model: accuracy overall and per category, how often it said "I don't know" to a question
it could answer, how often it invented an answer to one it could not, and the median and
p95 latency (typed: question to first reply audio; spoken: voice-to-voice).

The scorer (:func:`score`, :func:`normalise`, :func:`is_dont_know`) is pure and unit-tested.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import tempfile
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import SHIPPED_LLMS, Config, with_overrides
from ..errors import ConfigError

QUESTIONS = Path(__file__).with_name("quality.tsv")
CATEGORIES = ("fact", "arithmetic", "conversion", "date", "definition", "howto", "spelling", "unknown")
TOLERANCE = 0.02
"""``~N`` accepts any number within 2 % of N ("about 16 kilometres" for 10 miles)."""


@dataclass(frozen=True)
class Question:
    category: str
    text: str
    expected: str
    """The expected answer in the notation of quality.tsv's header."""


def load_questions(path: Path | None = None) -> list[Question]:
    """The question set; a malformed line is a one-line error naming the file and line."""
    path = path or QUESTIONS
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ConfigError(f"cannot read the question set {path}: {err.strerror}") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise ConfigError(f"{path}:{n}: want category<TAB>question<TAB>expected, got {line!r}")
        category, text, expected = (p.strip() for p in parts)
        if category not in CATEGORIES:
            raise ConfigError(f"{path}:{n}: unknown category {category!r} (known: {', '.join(CATEGORIES)})")
        out.append(Question(category, text, expected))
    return out


# ---------------------------------------------------------------------------- the scorer
_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}
_SCALES = {"thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000}


def _words_to_number(words: list[str]) -> tuple[str, int] | None:
    """A number spelled in words at the start of ``words``: (digits, words used); None if none."""
    total, current, used = 0, 0, 0
    last = ""
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w in _UNITS and last not in _UNITS:
            current += _UNITS[w]
        elif w in _TENS and last not in _UNITS and last not in _TENS:
            current += _TENS[w]
        elif w == "hundred" and used:
            current = current * 100
        elif w == "dozen" and used:
            current = current * 12
        elif w in _SCALES and used:
            total += current * _SCALES[w]
            current = 0
        elif w == "and" and last in ("hundred", *_SCALES) and (nxt in _UNITS or nxt in _TENS):
            pass  # "one hundred and twenty"
        else:
            break
        last = w
        used = i + 1
    if not used:
        return None
    if last == "and":
        used -= 1
    value = str(total + current)
    # "two point five four": the digits after "point", one word each
    if used < len(words) and words[used] == "point":
        decimals = []
        for w in words[used + 1:]:
            if w in _UNITS and _UNITS[w] < 10:
                decimals.append(str(_UNITS[w]))
            else:
                break
        if decimals:
            value += "." + "".join(decimals)
            used += 1 + len(decimals)
    return value, used


_TOKEN = re.compile(r"\d+\.\d+|[a-z0-9]+(?:'[a-z]+)?")


def normalise(text: str) -> str:
    """Lower case, plain words and digits: "Twenty-four," -> "24", "5,280 feet" -> "5280 feet"."""
    text = unicodedata.normalize("NFKC", text).lower()  # NFKC: "H₂O" -> "h2o"
    text = text.replace("’", "'").replace("‘", "'")
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)  # thousands separators
    text = re.sub(r"(?<=\d)\.0+(?!\d)", "", text)  # "100.0" is 100
    text = text.replace("-", " ").replace("°", " degrees ")
    text = re.sub(r"\ba (hundred|thousand|million|billion|dozen)\b", r"one \1", text)
    tokens = _TOKEN.findall(text)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        number = _words_to_number(tokens[i:]) if not tokens[i][0].isdigit() else None
        if number is not None:
            out.append(number[0])
            i += number[1]
        else:
            out.append(tokens[i])
            i += 1
    return " ".join(out)


_DONT_KNOW = re.compile(
    r"\b(?:i|we) (?:do not|don't|dont) (?:know|have|possess|recall|remember)\b"
    r"|\bi (?:am|'m) not (?:sure|aware|able|certain)\b|\bi'm not (?:sure|aware|able|certain)\b"
    r"|\b(?:can't|cannot|can not|unable to|not able to|couldn't) (?:know|tell|say|determine|answer|access|predict"
    r"|see|guess|read|provide|help with|find|give)\b"
    r"|\bi have no (?:way|idea|information|access|knowledge|data|record)\b"
    r"|\bno way (?:for me )?(?:to|of) know"
    r"|\b(?:not|im)possible (?:for me )?to (?:know|predict|tell|say)\b"
    r"|\bimpossible to (?:know|predict|tell|say)\b"
    r"|\byou (?:haven't|have not|didn't|did not) (?:told|tell|mention|shared|share)"
    r"|\bi (?:don't|do not) have (?:any |that |the )?(?:information|access|that|a way|the ability|knowledge|details)\b"
    r"|\bonly you (?:know|can)\b|\bi (?:wouldn't|would not) know\b|\bno (?:one|1) (?:can|knows)\b"
    r"|\bnobody (?:can|knows)\b",
)


def is_dont_know(reply: str) -> bool:
    """The reply says, in one of the usual ways, that the assistant does not or cannot know."""
    return bool(_DONT_KNOW.search(normalise(reply)))


_LETTER_RUN = re.compile(r"(?:(?<![A-Za-z])[A-Za-z](?![A-Za-z])[\s,\-–.:;'\"]*){3,}")


def spelled_words(reply: str) -> list[str]:
    """The words spelled letter by letter in ``reply`` ("N-E-C-E-S-S-A-R-Y" -> "necessary")."""
    return ["".join(ch for ch in m.group(0) if ch.isalpha()).lower() for m in _LETTER_RUN.finditer(reply)]


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _matches(alternative: str, reply: str) -> bool:
    """One alternative against a normalised reply: words (``*`` any ending) or ``~N``."""
    alternative = alternative.strip()
    if alternative.startswith("~"):
        want = float(alternative[1:])
        return any(abs(float(n) - want) <= TOLERANCE * abs(want) for n in _NUMBER.findall(reply))
    parts: list[str] = []
    for word in alternative.split():
        words = normalise(word.rstrip("*")).split()
        if not words:
            continue
        patterns = [re.escape(w) for w in words]
        if word.endswith("*"):
            patterns[-1] += "[a-z0-9']*"
        parts += patterns
    if not parts:
        return False
    body = r"\s+".join(parts)
    return re.search(rf"(?<![a-z0-9.]){body}(?![a-z0-9]|\.\d)", reply) is not None


def score(expected: str, reply: str) -> bool:
    """Whether ``reply`` gives the ``expected`` answer (the notation of quality.tsv's header)."""
    expected = expected.strip()
    if expected == "@unknown":
        return is_dont_know(reply)
    if expected.startswith("@spell:"):
        return expected.split(":", 1)[1].strip().lower() in spelled_words(reply)
    text = normalise(reply)
    return all(any(_matches(alt, text) for alt in group.split("|")) for group in expected.split("&"))


# ---------------------------------------------------------------------------- running it
def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy overall and per category, honesty, and latency of one model in one mode."""
    if not rows:
        return {"questions": 0}
    by_cat: dict[str, list[bool]] = {}
    for r in rows:
        by_cat.setdefault(r["category"], []).append(r["right"])
    answerable = [r for r in rows if r["category"] != "unknown"]
    unknowable = [r for r in rows if r["category"] == "unknown"]
    latency = [r["latency_ms"] for r in rows if r["latency_ms"] is not None]
    first = [len(r["first_phrase"].split()) for r in rows if r.get("first_phrase")]
    out: dict[str, Any] = {
        "questions": len(rows),
        "right": sum(r["right"] for r in rows),
        "accuracy": round(sum(r["right"] for r in rows) / len(rows), 3),
        "by_category": {c: round(sum(v) / len(v), 3) for c, v in by_cat.items()},
        "dont_know_when_answerable": sum(r["dont_know"] for r in answerable),
        "invented_when_unknowable": sum(not r["right"] for r in unknowable),
        "latency_p50_ms": round(statistics.median(latency), 1) if latency else None,
        "latency_p95_ms": round(float(np.percentile(latency, 95)), 1) if latency else None,
        "first_phrase_words_p50": statistics.median(first) if first else None,
    }
    heard = [r["heard_right"] for r in rows if r.get("heard_right") is not None]
    if heard:
        out["heard_word_for_word"] = round(sum(heard) / len(heard), 3)
    return out


def _row(q: Question, trace: Any, *, heard: str | None = None) -> dict[str, Any]:
    reply = trace.reply if trace is not None else ""
    row: dict[str, Any] = {
        "category": q.category, "question": q.text, "expected": q.expected, "reply": reply,
        "right": score(q.expected, reply), "dont_know": is_dont_know(reply),
        "latency_ms": trace.voice_to_voice_ms if trace is not None else None,
        "outcome": trace.outcome if trace is not None else "no turn",
        "first_phrase": trace.phrases[0] if trace is not None and trace.phrases else "",
    }
    if heard is not None:
        row["heard"] = heard
        row["heard_right"] = normalise(heard) == normalise(q.text)
    return row


def _private_config(config: Config, folder: Path, model: str) -> Config:
    """The benchmark's config: this model, and an empty memory of its own (never the wearer's)."""
    return with_overrides(config, llm={"model": model},
                          memory={"path": str(folder / "memory.db"), "log_turns": False},
                          persona={"dir": str(folder / "personas")})


def synthesise(config: Config, texts: Sequence[str]) -> list[np.ndarray]:
    """The questions spoken by the TTS voice with its random variation off (repeatable), at 16 kHz."""
    from ..audio.io import SAMPLE_RATE, resample
    from ..catalog import load_catalogue
    from ..engines.tts import PiperEngine

    path, _ = load_catalogue(cache_dir=Path(config.models_dir).expanduser() if config.models_dir
                             else None).resolve("tts", config.tts.voice)
    cfg = with_overrides(config, tts={"noise_scale": 0.0, "noise_w": 0.0}).tts
    voice = PiperEngine(path, cfg)
    return [resample(voice.synthesize(t), voice.sample_rate, SAMPLE_RATE) for t in texts]


def run_model(config: Config, model: str, questions: list[Question], *, typed: bool = True,
              spoken: list[np.ndarray] | None = None,
              progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """One model through every question, typed and (given the audio) spoken; its rows and summaries."""
    from ..audio.io import WavSink, WavSource
    from ..pipeline import Assistant

    with tempfile.TemporaryDirectory(prefix="ga-quality-") as tmp:
        folder = Path(tmp)
        (folder / "personas").mkdir()
        assistant = Assistant(_private_config(config, folder, model))
        try:
            t0 = time.perf_counter()
            assistant.load()
            progress(f"{model}: loaded in {time.perf_counter() - t0:.1f} s")
            result: dict[str, Any] = {"model": assistant.model_ids.get("llm", model)}
            if typed:
                rows = []
                for i, q in enumerate(questions, 1):
                    assistant.conversation.clear()  # independent questions
                    typed_trace = asyncio.run(assistant.respond_text(q.text, WavSink(os.devnull)))
                    rows.append(_row(q, typed_trace))
                    _progress_row(progress, model, "typed", i, len(questions), rows[-1])
                result["typed"] = {**_summary(rows), "rows": rows}
            if spoken is not None:
                rows = []
                for i, (q, audio) in enumerate(zip(questions, spoken, strict=True), 1):
                    assistant.conversation.clear()
                    source = WavSource.from_samples([audio], realtime=True, gap_s=1.2, lead_s=0.3)
                    traces = asyncio.run(assistant.serve(source, WavSink(os.devnull)))
                    answered = [t for t in traces if t.outcome != "announcement"]
                    trace = answered[0] if answered else None
                    rows.append(_row(q, trace, heard=trace.transcript if trace is not None else ""))
                    _progress_row(progress, model, "spoken", i, len(questions), rows[-1])
                result["spoken"] = {**_summary(rows), "rows": rows}
            return result
        finally:
            assistant.close()


def _progress_row(progress: Callable[[str], None], model: str, mode: str, i: int, n: int,
                  row: dict[str, Any]) -> None:
    mark = "ok " if row["right"] else "BAD"
    heard = f" (heard {row['heard']!r})" if "heard" in row and not row.get("heard_right") else ""
    progress(f"  {model} {mode} [{i:>3}/{n}] {mark} {row['question']!r}{heard} -> {row['reply'][:70]!r}")


def run_quality(config: Config, *, models: Sequence[str] = SHIPPED_LLMS, typed: bool = True,
                spoken: bool = True, limit: int | None = None, categories: Sequence[str] | None = None,
                questions_path: Path | None = None,
                progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Every model through the question set; the report (also what `bench --quality` embeds)."""
    from ..catalog import load_catalogue

    questions = load_questions(questions_path)
    if categories:
        unknown = [c for c in categories if c not in CATEGORIES]
        if unknown:
            raise ConfigError(f"--categories: unknown {', '.join(unknown)} (known: {', '.join(CATEGORIES)})")
        questions = [q for q in questions if q.category in categories]
    if limit is not None:
        questions = _spread(questions, limit)
    catalogue = load_catalogue(cache_dir=Path(config.models_dir).expanduser() if config.models_dir else None)
    runnable = []
    skipped = {}
    for m in models:
        entry = catalogue.models.get(m)
        if entry is not None and catalogue.status(entry) == "missing":
            skipped[m] = f"not fetched (glasses-assistant models fetch {m})"
            progress(f"{m}: skipped, {skipped[m]}")
            continue
        runnable.append(m)
    audio = None
    if spoken:
        t0 = time.perf_counter()
        audio = synthesise(config, [q.text for q in questions])
        progress(f"{len(questions)} questions spoken by the TTS voice in {time.perf_counter() - t0:.1f} s")
    results = {}
    for m in runnable:
        results[m] = run_model(config, m, questions, typed=typed, spoken=audio, progress=progress)
    return {
        "benchmark": "answer-quality",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "questions": len(questions),
        "categories": {c: sum(q.category == c for q in questions) for c in CATEGORIES},
        "models": results,
        "skipped": skipped,
    }


def _spread(questions: list[Question], n: int) -> list[Question]:
    """``n`` questions spread over the categories (the first of each, then the second...)."""
    by_cat: dict[str, list[Question]] = {}
    for q in questions:
        by_cat.setdefault(q.category, []).append(q)
    out: list[Question] = []
    depth = 0
    while len(out) < min(n, len(questions)):
        for qs in by_cat.values():
            if depth < len(qs) and len(out) < n:
                out.append(qs[depth])
        depth += 1
    return out


def format_quality(report: dict[str, Any]) -> str:
    """The per-model table: accuracy typed and spoken, per category, honesty, latency."""
    cats = [c for c, n in report["categories"].items() if n]
    short = {"fact": "fact", "arithmetic": "arith", "conversion": "conv", "date": "date", "definition": "def",
             "howto": "how", "spelling": "spell", "unknown": "idk"}
    lines = ["", f"answer quality, {report['questions']} questions "
             f"({', '.join(f'{n} {c}' for c, n in report['categories'].items() if n)})"]
    head = (f"  {'model':<28}{'mode':<8}{'right':>7}{'p50 ms':>8}{'p95 ms':>8}"
            + "".join(f"{short[c]:>6}" for c in cats) + f"{'idk*':>6}{'made up':>8}")
    lines.append(head)
    for model, res in report["models"].items():
        for mode in ("typed", "spoken"):
            s = res.get(mode)
            if not s or not s.get("questions"):
                continue
            row = (f"  {model[:27]:<28}{mode:<8}{s['accuracy'] * 100:>6.0f}%"
                   f"{_f(s['latency_p50_ms']):>8}{_f(s['latency_p95_ms']):>8}")
            row += "".join(f"{s['by_category'].get(c, 0) * 100:>5.0f}%" for c in cats)
            row += f"{s['dont_know_when_answerable']:>6}{s['invented_when_unknowable']:>8}"
            if "heard_word_for_word" in s:
                row += f"   heard word for word {s['heard_word_for_word'] * 100:.0f}%"
            lines.append(row)
    lines.append("  p50/p95: typed, question to first reply audio; spoken, voice-to-voice. idk*: \"I don't know\" "
                 "to an answerable question; made up: an answer invented where none is possible")
    for m, why in report.get("skipped", {}).items():
        lines.append(f"  {m}: {why}")
    return "\n".join(lines)


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def run_quality_bench(config: Config, *, models: Sequence[str], typed: bool, spoken: bool, limit: int | None,
                      categories: Sequence[str] | None, json_path: Path | None,
                      questions_path: Path | None = None) -> int:
    """The `quality-bench` command: run, print the table, write the JSON."""
    report = run_quality(config, models=models, typed=typed, spoken=spoken, limit=limit, categories=categories,
                         questions_path=questions_path, progress=lambda m: print(m, flush=True))
    print(format_quality(report))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2))
        print(f"report: {json_path}")
    return 0 if report["models"] else 1
