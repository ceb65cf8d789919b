# SPDX-License-Identifier: GPL-3.0-or-later
"""`glasses-assistant bench`: voice-to-voice latency over N spoken prompts.

Each prompt is spoken by the TTS voice (at a few different paces) or read from
``--wav-dir``, played into the loop in real time like a microphone, and answered
into a WAV sink, twice: by the streaming loop and by a plain sequential pipeline
(fixed silence timeout, faster-whisper's stock 30 s window, whole transcription,
whole reply, whole synthesis) on the same loaded models, alternating prompt by
prompt so that both see the same machine load; with ``--ablate`` also with each
latency technique switched off on its own. Reported: p50/p95 of the voice-to-voice latency (the wearer's last
voiced sample to the first sample of reply audio) and of each stage, each
stage's share, the streaming/sequential ratio, cold start and peak memory; as a
table, as JSON, as a Chrome/Perfetto trace and as a waterfall picture.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import resource
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.io import SAMPLE_RATE, WavSink, WavSource, read_wav, resample
from ..config import TINY_SYSTEM_PROMPT, Config
from ..pipeline import Assistant
from ..trace import STAGES, TurnTrace

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
    v2v = [v for t in answered if (v := t.voice_to_voice_ms) is not None]
    stages: dict[str, dict[str, float | None]] = {}
    p50_total = percentile(v2v, 50) or 0.0
    for stage in STAGES:
        vals = [ms for t in answered if (ms := t.stage_ms()[stage]) is not None]
        p50 = percentile(vals, 50)
        stages[stage] = {
            "p50_ms": _r(p50), "p95_ms": _r(percentile(vals, 95)),
            "share_of_p50": _r(p50 / p50_total, 3) if p50 is not None and p50_total else None,
        }
    return {
        "turns": len(traces),
        "answered": len(answered),
        "voice_to_voice_ms": {"p50": _r(p50_total), "p95": _r(percentile(v2v, 95)),
                              "min": _r(min(v2v, default=None)), "max": _r(max(v2v, default=None))},
        "stages": stages,
        "speculative_stt_used": sum(t.speculative_stt for t in answered),
        "early_ends": sum(t.early_end for t in answered),
        "replies_held": sum(t.held_ms > 0 for t in answered),
        "preemptive_kept": sum(bool(t.early and t.early.get("preemptive") == "kept") for t in answered),
        "first_turn_ms": answered[0].voice_to_voice_ms if answered else None,
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
    assert assistant.tts is not None
    out = []
    for i in range(n):
        text = PROMPTS[i % len(PROMPTS)]
        # Repeatable prompts (Piper's random variation off) so runs compare like for like; the
        # assistant's own loaded voice at each pace, so the prompts add nothing to the peak RSS.
        voice = assistant.tts.variant(length_scale=PACES[i % len(PACES)], noise_scale=0.0, noise_w=0.0)
        out.append((text, resample(voice.synthesize(text), voice.sample_rate, SAMPLE_RATE)))
    return out



OLD_SYSTEM_PROMPT = TINY_SYSTEM_PROMPT
"""The prompt before it was re-tuned for the 1.5B (the --ablate variant "the old system prompt")."""

# Each technique switched off (or changed) on its own, for --ablate: (name, {stage: {field: value}}).
ABLATIONS: list[tuple[str, dict[str, dict[str, Any]]]] = [
    ("no early end", {"vad": {"min_end_silence_ms": None}}),  # None: = end_silence_ms
    ("no speculative stt", {"stt": {"speculative": False}}),
    ("30 s whisper window", {"stt": {"window_s": 30}}),
    ("no prefill while speaking", {"llm": {"prefill_every_ms": 0}}),
    ("no preemptive generation", {"llm": {"preemptive": False}}),
    ("neither prefill nor preemption", {"llm": {"prefill_every_ms": 0, "preemptive": False}}),
    ("sentence-level first phrase", {"tts": {"first_phrase_words": 30}}),
    ("first phrase of 2 words", {"tts": {"first_phrase_words": 2}}),
    ("first phrase of 6 words", {"tts": {"first_phrase_words": 6}}),
    ("llm on 1 thread", {"llm": {"threads": 1}}),
    ("the old system prompt", {"llm": {"system_prompt": OLD_SYSTEM_PROMPT}}),
    ("no doubtful hold", {"vad": {"hold_below": 0.0}}),  # what the chat LLM's end-of-words judgement costs
    ("no voice doubt", {"vad": {"hold_voice_below": 0.0}}),  # what Smart Turn at every pause costs
    ("reply held for the take-back", {"vad": {"hold_reply": True}}),  # not a saving: what the hold costs
]
# The end of turn before the end-of-turn policy (--vs-punctuation): the transcript's punctuation alone,
# no Smart Turn, no take-back; side by side with the streaming loop, prompt by prompt.
PUNCTUATION_END: dict[str, dict[str, Any]] = {"vad": {"end_policy": "punctuation", "take_back_ms": 0}}
DRAFT_MODEL = "qwen2.5-coder-0.5b-q4_k_m"
"""The draft model of the speculative decoding variant (same tokenizer as the 1.5B)."""
# The plain pipeline transcribes as faster-whisper does out of the box (a 30 s window).
BASELINE: dict[str, dict[str, Any]] = {"stt": {"window_s": 30}}


def variant_config(base: Config, changes: dict[str, dict[str, Any]]) -> Config:
    """``base`` with some stage fields changed (None for min_end_silence_ms: switched off)."""
    from ..config import with_overrides

    resolved = {stage: {k: (base.vad.end_silence_ms if v is None and k == "min_end_silence_ms" else v)
                        for k, v in fields.items()} for stage, fields in changes.items()}
    return with_overrides(base, **resolved)


def use_config(assistant: Assistant, config: Config) -> None:
    """Switch the loaded assistant to a variant config (settings read per turn or per call)."""
    assistant.config = config
    if assistant.stt is not None:
        assistant.stt.cfg = config.stt
    if assistant.llm is not None:
        assistant.llm.cfg = config.llm
        if hasattr(assistant.llm, "set_threads"):
            assistant.llm.set_threads(config.llm.threads)
    personal = assistant.personal
    personal.conversation.system_prompt = personal.prompt_for(personal.persona)


def forget_last_question(assistant: Assistant) -> None:
    """Leave only the system prompt in the LLM's KV cache, as a new question finds it.

    Every mode answers the same prompt in turn; without this, the mode that goes second would find
    the whole question already evaluated by the first (llama.cpp's prefix reuse), which is exactly
    the work prefill and preemptive generation are there to hide.
    """
    if assistant.llm is not None and hasattr(assistant.llm, "warm"):
        assistant.llm.warm([{"role": "system", "content": assistant.conversation.system_prompt},
                            {"role": "user", "content": "Hello."}])


async def _one_turn(assistant: Assistant, audio: np.ndarray, *, sequential: bool) -> list[TurnTrace]:
    assistant.conversation.clear()  # independent prompts: the same prompt length every time
    forget_last_question(assistant)
    source = WavSource.from_samples([audio], realtime=True, gap_s=1.5, lead_s=0.3)
    return await assistant.serve(source, WavSink(os.devnull), sequential=sequential)


BARGE_IN_OPENERS = [
    "Tell me about the history of the city of London.",
    "Describe how a bicycle works.",
    "Tell me a story about a dragon.",
    "Explain how rain forms.",
    "Tell me about the planets of the solar system.",
]


async def _barge_in_trial(assistant: Assistant, opener: np.ndarray, question: np.ndarray,
                          after_s: float) -> dict[str, Any]:
    """One long answer talked over in the virtual room; the stop times on one clock."""
    from ..audio.room import AcousticRoom, Utterance

    assistant.conversation.clear()
    assistant.interruptions.clear()
    room = AcousticRoom(echo_db=-15, echo_delay_ms=8, noise_db=-60)
    source = room.source([Utterance(opener, at_s=0.3), Utterance(question, after_playback_s=after_s)], tail_s=2.0)
    traces = await assistant.serve(source, room.sink, barge_in=True)
    row: dict[str, Any] = {"outcomes": [t.outcome for t in traces], "stopped": bool(room.sink.flushes)}
    if room.sink.flushes and len(room.wearer_onsets) >= 2 and assistant.interruptions:
        onset, stop = room.wearer_onsets[1], room.sink.flushes[0]
        decided = assistant.interruptions[0]["decided_t"]
        row.update(stop_after_voice_ms=round((stop - onset) * 1000, 1),
                   stop_after_decision_ms=round((stop - decided) * 1000, 1),
                   decision_after_voice_ms=round((decided - onset) * 1000, 1))
    return row


def run_barge_in(assistant: Assistant, n: int) -> dict[str, Any]:
    """N long answers talked over in the virtual room: barge-in stop latency p50/p95.

    Measured: the time playback stopped minus the capture time of the wearer's first
    voiced sample (includes ``[bargein] min_speech_ms``), and minus the capture time of
    the chunk on which the barge-in was decided.
    """
    from ..audio.io import SAMPLE_RATE as RATE

    assert assistant.tts is not None
    tts = assistant.tts

    def say(text: str) -> np.ndarray:
        return resample(tts.synthesize(text), tts.sample_rate, RATE)

    rows = []
    for i in range(n):
        opener = say(BARGE_IN_OPENERS[i % len(BARGE_IN_OPENERS)])
        question = say(PROMPTS[i % len(PROMPTS)])
        rows.append(asyncio.run(_barge_in_trial(assistant, opener, question, 1.5 + 0.37 * (i % 4))))
        print(f"  barge-in [{i + 1}/{n}] {rows[-1]}", flush=True)
    voice = [r["stop_after_voice_ms"] for r in rows if "stop_after_voice_ms" in r]
    decision = [r["stop_after_decision_ms"] for r in rows if "stop_after_decision_ms" in r]
    return {
        "trials": n, "stopped": len(voice), "min_speech_ms": assistant.config.bargein.min_speech_ms,
        "stop_after_voice_ms": {"p50": _r(percentile(voice, 50)), "p95": _r(percentile(voice, 95))},
        "stop_after_decision_ms": {"p50": _r(percentile(decision, 50)), "p95": _r(percentile(decision, 95))},
        "rows": rows,
    }


def run_draft_pass(assistant: Assistant, config: Config, clips: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    """Speculative decoding, switched on: a second copy of the chat LLM with the 0.5B as its draft,
    answering the same prompts in turn with the plain one (the streaming loop otherwise as shipped).

    A pass of its own because it loads another model: its memory is measured as the resident memory
    the draft-carrying copy adds, and the report's peak RSS is taken before it.
    """
    from ..catalog import ModelMissingError
    from ..engines.llm import LlamaEngine
    from ..engines.workers import current_rss_mb
    from ..errors import ModelError

    plain = assistant.llm
    try:
        draft_path, draft_id = assistant.catalogue.resolve("llm", DRAFT_MODEL)
    except (ModelError, ModelMissingError) as err:
        print(f"speculative decoding skipped: {err}", flush=True)
        return {"skipped": str(err)}
    print(f"speculative decoding: loading {assistant.model_ids.get('llm')} with {draft_id} as its draft ...",
          flush=True)
    rss0 = current_rss_mb()
    drafted = LlamaEngine(assistant.model_paths["llm"], replace(config.llm, draft_model=draft_id),
                          name=assistant.model_ids.get("llm"), draft_path=draft_path)
    drafted.warm([{"role": "system", "content": assistant.conversation.system_prompt},
                  {"role": "user", "content": "Hello."}])
    rss1 = current_rss_mb()
    traces: dict[str, list[TurnTrace]] = {"streaming": [], "drafted": []}
    try:
        for i, (_text, audio) in enumerate(clips, 1):
            order = ("streaming", "drafted") if i % 2 else ("drafted", "streaming")
            for mode in order:
                assistant.llm = drafted if mode == "drafted" else plain
                traces[mode] += asyncio.run(_one_turn(assistant, audio, sequential=False))
            print(f"  [{i:>2}/{len(clips)}] plain {_f(traces['streaming'][-1].voice_to_voice_ms):>5} ms  "
                  f"drafted {_f(traces['drafted'][-1].voice_to_voice_ms):>5} ms", flush=True)
    finally:
        assistant.llm = plain
    plain_s, drafted_s = summarise(traces["streaming"]), summarise(traces["drafted"])
    return {
        "draft_model": draft_id, "draft_tokens": config.llm.draft_tokens,
        "plain_p50_ms": plain_s["voice_to_voice_ms"]["p50"], "plain_p95_ms": plain_s["voice_to_voice_ms"]["p95"],
        "drafted_p50_ms": drafted_s["voice_to_voice_ms"]["p50"],
        "drafted_p95_ms": drafted_s["voice_to_voice_ms"]["p95"],
        "plain_llm_p50_ms": plain_s["stages"]["llm"]["p50_ms"],
        "drafted_llm_p50_ms": drafted_s["stages"]["llm"]["p50_ms"],
        "rss_of_drafted_copy_mb": round(rss1 - rss0, 1) if rss0 is not None and rss1 is not None else None,
        "rss_of_plain_llm_mb": assistant.engines.rss_mb.get("llm"),
        "note": "with a draft model llama-cpp-python keeps the logits of every context position: up to "
                f"{config.llm.context} x vocabulary x 4 bytes more as the context fills",
    }


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc), for the cold-start figure."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run_bench(config: Config, *, prompts: int = 20, json_path: Path | None = None,
              wav_dir: Path | None = None, sequential: bool = True, trace_path: Path | None = None,
              png_path: Path | None = None, compare: Path | None = None, ablate: bool = False,
              barge_in: int = 5, quality: bool = False, vs_punctuation: bool = False,
              versus: dict[str, Config] | None = None) -> int:
    """Run the benchmark, print the table, write JSON/trace/PNG; return the exit status."""
    t_start = time.perf_counter()
    assistant = Assistant(config)
    load_s = assistant.load()
    ready_s = time.perf_counter() - t_start
    age = process_age_s()
    clips = spoken_prompts(assistant, prompts, wav_dir)
    modes = ["streaming", "sequential"] if sequential else ["streaming"]
    configs = {"streaming": config, "sequential": variant_config(config, BASELINE)}
    if vs_punctuation:
        modes.append("punctuation end of turn")
        configs["punctuation end of turn"] = variant_config(config, PUNCTUATION_END)
    for name, variant in (versus or {}).items():  # --vs STAGE.FIELD=VALUE
        modes.append(name)
        configs[name] = variant
    if ablate:
        modes.append("sequential, 10 s window")
        configs["sequential, 10 s window"] = config
        for name, changes in ABLATIONS:
            modes.append(name)
            configs[name] = variant_config(config, changes)
    traces: dict[str, list[TurnTrace]] = {m: [] for m in modes}
    rows: list[dict[str, Any]] = []
    print(f"running {len(clips)} spoken prompts in real time through: {', '.join(modes)} ...", flush=True)
    for i, (text, audio) in enumerate(clips, 1):
        # Alternate which mode goes first so neither always follows the other.
        order = modes if i % 2 else modes[::-1]
        for mode in order:
            use_config(assistant, configs[mode])
            turn = asyncio.run(_one_turn(assistant, audio, sequential=mode.startswith("sequential")))
            traces[mode] += turn
            for t in turn:
                rows.append({"mode": mode, "prompt": text, **t.to_json()})
        line = "  ".join(
            f"{m} {_f(traces[m][-1].voice_to_voice_ms) if traces[m] else '-':>5} ms" for m in modes
        )
        last = traces["streaming"][-1] if traces["streaming"] else None
        print(f"  [{i:>2}/{len(clips)}] {line}  {last.transcript if last else ''!r} -> "
              f"{(last.reply if last else '')[:50]!r}", flush=True)
    use_config(assistant, config)
    barge = None
    if barge_in > 0:
        print(f"barge-in: {barge_in} long answers talked over in a virtual room (echo -15 dB, 8 ms) ...", flush=True)
        barge = run_barge_in(assistant, barge_in)
    peak_rss = peak_rss_mb()  # before the speculative decoding pass loads a second copy of the LLM
    draft = run_draft_pass(assistant, config, clips) if ablate else None
    assistant.close()
    summaries = {m: summarise(traces[m]) for m in modes}
    report: dict[str, Any] = {
        "benchmark": "voice-to-voice",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "models": assistant.model_ids,
        "threads": {"stt": config.stt.threads, "llm": config.llm.threads, "tts": config.tts.threads},
        "vad": {"end_silence_ms": config.vad.end_silence_ms, "min_end_silence_ms": config.vad.min_end_silence_ms,
                "pause_ms": config.vad.pause_ms},
        "cold_start_s": round(age if age is not None else ready_s, 2),
        "load_s": load_s,
        "rss_mb_by_stage": dict(assistant.engines.rss_mb),
        "peak_rss_mb": peak_rss,
        "summary": summaries["streaming"],
        "modes": summaries,
        "turns": rows,
    }
    if barge is not None:
        report["barge_in"] = barge
    if sequential:
        s_p50 = summaries["streaming"]["voice_to_voice_ms"]["p50"]
        q_p50 = summaries["sequential"]["voice_to_voice_ms"]["p50"]
        report["ratio_p50"] = round(s_p50 / q_p50, 3) if s_p50 and q_p50 else None
        report["ratio_of_medians_pairwise"] = _pairwise_ratio(traces["streaming"], traces["sequential"])
    side = [m for m in modes if m == "punctuation end of turn" or m in (versus or {})]
    if side:  # --vs-punctuation, --vs: each variant against the default, prompt by prompt
        report["versus"] = {
            m: {"p50_ms": summaries[m]["voice_to_voice_ms"]["p50"], "p95_ms": summaries[m]["voice_to_voice_ms"]["p95"],
                "end_of_turn_p50_ms": summaries[m]["stages"]["end_of_turn"]["p50_ms"],
                "default_over_variant_pairwise": _pairwise_ratio(traces["streaming"], traces[m])}
            for m in side}
    if ablate:
        base = summaries["streaming"]["voice_to_voice_ms"]["p50"]
        report["ablation"] = {
            m: {"p50_ms": summaries[m]["voice_to_voice_ms"]["p50"],
                "p95_ms": summaries[m]["voice_to_voice_ms"]["p95"],
                "p50_cost_of_switching_off_ms": _r(summaries[m]["voice_to_voice_ms"]["p50"] - base)
                if summaries[m]["voice_to_voice_ms"]["p50"] is not None and base is not None else None}
            for m in modes if m != "streaming"
        }
        if draft is not None:
            report["speculative_decoding"] = draft
    print(format_table(report))
    if quality:
        # After the latency figures (and their peak RSS) are taken: a fresh assistant per model.
        from .quality import format_quality, run_quality

        del assistant
        model = report["models"].get("llm") or config.llm.wanted or "default"
        report["quality"] = run_quality(config, models=[model], progress=lambda m: print(m, flush=True))
        print(format_quality(report["quality"]))
    if compare is not None:
        print(format_comparison(report, json.loads(compare.read_text())))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2))
        print(f"report: {json_path}")
    if trace_path is not None:
        write_chrome_trace(trace_path, traces)
        print(f"trace (open in ui.perfetto.dev or chrome://tracing): {trace_path}")
    if png_path is not None and traces["streaming"]:
        if write_waterfall(png_path, traces):
            print(f"waterfall: {png_path}")
    return 0 if report["summary"]["answered"] else 1


def _pairwise_ratio(streaming: list[TurnTrace], sequential: list[TurnTrace]) -> float | None:
    """Median over prompts of streaming/sequential latency for the same prompt."""
    ratios = [a.voice_to_voice_ms / b.voice_to_voice_ms for a, b in zip(streaming, sequential, strict=False)
              if a.voice_to_voice_ms and b.voice_to_voice_ms]
    return round(statistics.median(ratios), 3) if ratios else None


def format_table(report: dict[str, Any]) -> str:
    modes = {m: v for m, v in report["modes"].items() if m in ("streaming", "sequential")}
    lines = ["", f"voice-to-voice latency, {report['machine']['cpus']} CPUs "
             f"(end of the wearer's speech -> first reply audio sample)"]
    header = f"  {'stage':<14}" + "".join(f"{m + ' p50':>16}{'p95':>7}{'share':>7}" for m in modes)
    lines.append(header)
    for stage in STAGES:
        row = f"  {stage:<14}"
        for m in modes:
            st = modes[m]["stages"][stage]
            share = f"{st['share_of_p50'] * 100:.0f}%" if st["share_of_p50"] is not None else "-"
            row += f"{_f(st['p50_ms']):>16}{_f(st['p95_ms']):>7}{share:>7}"
        lines.append(row)
    row = f"  {'TOTAL ms':<14}"
    for m in modes:
        v = modes[m]["voice_to_voice_ms"]
        row += f"{_f(v['p50']):>16}{_f(v['p95']):>7}{'':>7}"
    lines.append(row)
    answered = " · ".join(f"{m} {modes[m]['answered']}/{modes[m]['turns']}" for m in modes)
    lines.append(f"  answered: {answered}")
    if "ratio_p50" in report:
        lines.append(f"  streaming / sequential: p50 ratio {report['ratio_p50']} "
                     f"(median of per-prompt ratios {report['ratio_of_medians_pairwise']})")
    s = modes["streaming"]
    lines.append(f"  streaming: speculative transcripts used {s['speculative_stt_used']}/{s['answered']}, "
                 f"turns ended early on a finished sentence {s['early_ends']}/{s['answered']}, "
                 f"preemptive answers kept {s['preemptive_kept']}/{s['answered']}")
    if "versus" in report:
        v = s["voice_to_voice_ms"]
        lines.append(f"  side by side (alternating, same prompts): default p50 {_f(v['p50'])} ms, "
                     f"p95 {_f(v['p95'])} ms, end of turn p50 {_f(s['stages']['end_of_turn']['p50_ms'])} ms")
        for m, a in report["versus"].items():
            lines.append(f"    {m:<30} p50 {_f(a['p50_ms']):>6} ms  p95 {_f(a['p95_ms']):>6} ms  end of turn p50 "
                         f"{_f(a['end_of_turn_p50_ms']):>5} ms  (default / this, per prompt: "
                         f"{a['default_over_variant_pairwise']})")
    if "ablation" in report:
        lines.append("  each technique switched off alone (same prompts, same run):")
        for m, a in report["ablation"].items():
            cost = a["p50_cost_of_switching_off_ms"]
            lines.append(f"    {m:<30} p50 {_f(a['p50_ms']):>6} ms  p95 {_f(a['p95_ms']):>6} ms  "
                         f"({'-' if cost is None else f'{cost:+.0f}'} ms at p50)")
    if report.get("speculative_decoding", {}).get("drafted_p50_ms") is not None:
        d = report["speculative_decoding"]
        lines.append(f"  speculative decoding ({d['draft_model']} drafting {d['draft_tokens']} tokens), own pass: "
                     f"p50 {_f(d['drafted_p50_ms'])} ms vs {_f(d['plain_p50_ms'])} ms without "
                     f"(llm stage {_f(d['drafted_llm_p50_ms'])} vs {_f(d['plain_llm_p50_ms'])} ms); the drafting "
                     f"copy takes {_f(d['rss_of_drafted_copy_mb'])} MB vs {_f(d['rss_of_plain_llm_mb'])} MB")
    if "barge_in" in report:
        b = report["barge_in"]
        lines.append(f"  barge-in stop latency ({b['stopped']}/{b['trials']} stopped; wearer's first voiced sample "
                     f"-> playback stopped, min speech {b['min_speech_ms']} ms included): "
                     f"p50 {_f(b['stop_after_voice_ms']['p50'])} ms, p95 {_f(b['stop_after_voice_ms']['p95'])} ms; "
                     f"from the decision: p50 {_f(b['stop_after_decision_ms']['p50'])} ms, "
                     f"p95 {_f(b['stop_after_decision_ms']['p95'])} ms")
    lines.append(f"  cold start (process start to ready) {report['cold_start_s']} s · "
                 f"peak RSS {report['peak_rss_mb']} MB")
    return "\n".join(lines)


def format_comparison(new: dict[str, Any], old: dict[str, Any]) -> str:
    """Side by side with an earlier --json report (same machine, ideally same day)."""
    def get(r: dict[str, Any], *keys: str) -> float | None:
        node: Any = r  # parsed JSON: a dict until the last key, then the number
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                return None
            node = node[k]
        return node

    lines = ["", f"compared with the report of {old.get('when', '?')}:"]
    for label, keys in [("p50 ms", ("summary", "voice_to_voice_ms", "p50")),
                        ("p95 ms", ("summary", "voice_to_voice_ms", "p95")),
                        ("ratio", ("ratio_p50",)), ("cold start s", ("cold_start_s",)),
                        ("peak RSS MB", ("peak_rss_mb",))]:
        a, b = get(old, *keys), get(new, *keys)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a:
            delta = f"{(b - a) / a * 100:+.0f}%"
        else:
            delta = ""
        lines.append(f"  {label:<14}{_f(a):>10} -> {_f(b):<10} {delta}")
    return "\n".join(lines)


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}" if abs(x) >= 10 else f"{x:.2f}"


TRACKS = ("microphone", "stt", "camera", "vision", "llm", "tts", "hold", "speaker")


def write_chrome_trace(path: Path, traces: dict[str, list[TurnTrace]]) -> None:
    """Every span of every turn as Chrome trace events (one process per mode, a thread per stage)."""
    all_times = [sp[2] for ts in traces.values() for t in ts for sp in t.spans]
    if not all_times:
        return
    t0 = min(all_times)
    events: list[dict[str, Any]] = []
    for pid, (mode, turns) in enumerate(traces.items(), 1):
        events.append({"ph": "M", "pid": pid, "name": "process_name", "args": {"name": f"{mode} loop"}})
        for tid, track in enumerate(TRACKS, 1):
            events.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": track}})
        for t in turns:
            for track, label, start, end in t.spans:
                events.append({
                    "ph": "X", "pid": pid, "tid": TRACKS.index(track) + 1 if track in TRACKS else 9,
                    "name": label[:60], "cat": track, "ts": round((start - t0) * 1e6),
                    "dur": max(1, round((end - start) * 1e6)), "args": {"turn": t.turn},
                })
            if t.speech_end is not None and t.first_audio is not None:
                events.append({
                    "ph": "X", "pid": pid, "tid": 10, "name": f"voice-to-voice {t.voice_to_voice_ms:.0f} ms",
                    "cat": "latency", "ts": round((t.speech_end - t0) * 1e6),
                    "dur": round((t.first_audio - t.speech_end) * 1e6), "args": {"transcript": t.transcript},
                })
        events.append({"ph": "M", "pid": pid, "tid": 10, "name": "thread_name", "args": {"name": "latency"}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}))


def write_waterfall(path: Path, traces: dict[str, list[TurnTrace]]) -> bool:
    """A picture of the median streaming turn (and the same prompt sequentially)."""
    from ..extras import hint, missing

    if missing("matplotlib"):
        print("waterfall skipped: " + hint("matplotlib", "bench", "the waterfall picture"))
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    streaming = [t for t in traces["streaming"] if t.voice_to_voice_ms is not None]
    if not streaming:
        return False
    ranked = sorted(range(len(streaming)), key=lambda i: streaming[i].voice_to_voice_ms or 0)
    idx = ranked[len(ranked) // 2]
    shown = [("streaming", streaming[idx])]
    seq = [t for t in traces.get("sequential", []) if t.voice_to_voice_ms is not None]
    if idx < len(seq):
        shown.append(("sequential", seq[idx]))
    colours = {"microphone": "#8da0cb", "stt": "#66c2a5", "camera": "#b3b3b3", "vision": "#e5c494",
               "llm": "#fc8d62", "tts": "#e78ac3", "hold": "#ffd92f", "speaker": "#a6d854"}
    fig, axes = plt.subplots(len(shown), 1, figsize=(11, 2.2 + 1.6 * len(shown)), squeeze=False)
    for ax, (mode, t) in zip(axes[:, 0], shown, strict=True):
        zero = t.speech_end or 0.0
        for row, track in enumerate(TRACKS):
            for trk, label, start, end in t.spans:
                if trk != track:
                    continue
                ax.barh(row, (end - start) * 1000, left=(start - zero) * 1000, color=colours[track],
                        edgecolor="black", linewidth=0.4)
                if (end - start) * 1000 > 120:
                    x = max((start - zero) * 1000, -1500) + 8  # keep the label inside the axes
                    ax.text(x, row, label[:28], va="center", fontsize=7)
        ax.axvline(0, color="black", linestyle="--", linewidth=1)
        if t.first_audio is not None:
            ax.axvline((t.first_audio - zero) * 1000, color="red", linewidth=1.5)
        ax.set_yticks(range(len(TRACKS)), TRACKS)
        ax.invert_yaxis()
        ax.set_xlim(-1500, max(2500, ((t.playback_end or zero) - zero) * 1000 + 100))
        ax.set_title(f"{mode}: {t.transcript!r} -> voice-to-voice {t.voice_to_voice_ms:.0f} ms "
                     "(dashed: end of speech, red: first reply audio)", fontsize=9)
        ax.set_xlabel("ms from the end of the wearer's speech")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
