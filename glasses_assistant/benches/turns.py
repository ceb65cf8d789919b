# SPDX-License-Identifier: GPL-3.0-or-later
"""`glasses-assistant bench --turns`: does the end of turn cut the wearer off, and how long does it wait?

Utterances are spoken by more than one voice (Piper's and espeak-ng's, each at two paces): requests
with a natural mid-sentence pause (written with a comma there, so the voice says the first half as a
phrase that goes on; the comma's gap is then stretched to 300-900 ms) and finished requests said in
one breath. Each utterance runs through the real front end of the loop, chunk by chunk: Silero VAD,
the end-of-turn detector and, at each pause, the real speculative Whisper transcription and the real
Smart Turn judgement, run at the same time on two threads as the listener runs them, then the chat
LLM's end-of-words probability on the transcript (``[vad] hold_below``), each result arriving after
the time it really took on this machine. Every policy (:mod:`..turn_policy`) is then
replayed over that same record, so all of them are judged on identical audio, VAD decisions and model
outputs, side by side in one run.

Scored per policy:

* false cut-offs: a paused utterance whose turn ended in the pause (answered before the wearer had
  finished; the punctuation rule's "Set a timer." / "for ten minutes" failure);
* missed ends: an utterance whose end was not recognised, so the turn ended only when the policy ran
  out of patience (the silence limit);
* end-of-turn wait: from the wearer's last voiced chunk to the decision, p50/p95, on finished
  utterances (the target: 300 ms p50) and on every utterance's real end.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.io import SAMPLE_RATE, resample
from ..audio.smart_turn import SmartTurn
from ..audio.vad import SileroVad
from ..catalog import load_catalogue
from ..config import Config, VadConfig
from ..engines.llm import LlamaEngine
from ..engines.stt import WhisperEngine
from ..engines.voices import open_voice
from ..errors import ConfigError
from ..listen import VOICE_ASK_CHUNKS
from ..turn import EndOfTurnDetector, SpeechPaused, SpeechResumed, SpeechStarted, TurnEnded, TurnEvent
from ..turn_policy import EndOfTurnPolicy

# The comma marks where the wearer pauses: the voice then says the first half as a phrase that
# goes on, as a person searching for the next word does.
PAUSED = [
    "Set a timer, for ten minutes.",
    "What is the capital of, Australia?",
    "Remind me to buy milk, and eggs tomorrow.",
    "Tell me about the, history of Rome.",
    "How far is it from London, to Paris?",
    "Turn the volume up, a little bit.",
    "What time is it, in Tokyo?",
    "Translate good morning, into French.",
    "Set an alarm, for seven tomorrow morning.",
    "What is the weather like, in Berlin today?",
    "Call my sister, when I get home.",
    "How many grams are in, a pound?",
    "Add bread, to my shopping list.",
    "Who wrote, the Old Man and the Sea?",
    "Read me the sign, on the left.",
    "Remind me, to water the plants.",
]
FINISHED = [
    "What is the capital of France?",
    "Set a timer for five minutes.",
    "Turn it off.",
    "What time is it?",
    "Tell me a joke.",
    "How tall is Mount Everest?",
    "What am I looking at?",
    "Thank you.",
    "Translate hello into Spanish.",
    "Remind me to call mum at six.",
    "What is the weather tomorrow?",
    "How do you say thank you in German?",
    "Who painted the Mona Lisa?",
    "Add eggs to my shopping list.",
    "Stop the music.",
    "How many days are in a year?",
]
VOICES = (("piper-en-us-joe-medium", 1.0), ("piper-en-us-joe-medium", 1.25),
          ("espeak-ng:en-us", 1.0), ("espeak-ng:en-us", 0.85))
"""(voice, length_scale): Piper's default voice and espeak-ng's, each at its own pace and a slower
(Piper) or faster (espeak-ng) one."""
PAUSES_MS = (300, 450, 600, 750, 900)
POLICY_NAMES = ("punctuation", "smart-turn", "combined")
REPLY_MS = 700
"""Default for ``--reply-ms``: the least time from an early end to the first reply audio, so that a
wearer who goes on sooner takes the turn back (measured: see README, Turn-taking)."""
CHUNK = 512
CHUNK_MS = 32.0
LEAD_S, TAIL_S = 0.4, 2.0


@dataclass
class Utterance:
    voice: str
    text: str
    audio: np.ndarray
    resume_s: float | None
    """Where the second half starts (paused utterances), in seconds from the start of ``audio``."""


@dataclass
class Pause:
    """One pause the detector reported, and what the models said about it (with when)."""

    chunk: int
    transcript: str
    stt_s: float
    probability: float
    turn_s: float
    end_p: float | None = None
    """The chat LLM's probability that the words end with ``transcript`` (``[vad] hold_below``)."""
    end_p_s: float = 0.0
    """When it was known, from the pause: after the transcript, on the llm worker."""


@dataclass
class Record:
    """One utterance through the front end: per chunk, silence and events; per pause, the models."""

    utt: Utterance
    silence: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    resumes: dict[int, float] = field(default_factory=dict)
    pauses: dict[int, Pause] = field(default_factory=dict)
    speech_end_s: float = 0.0
    """The last voiced chunk's end: where end-of-turn wait starts."""
    ends: list[int] = field(default_factory=list)
    """Chunks where the detector itself ended the turn (its silence limit: the longest patience)."""


def stretch_gap(audio: np.ndarray, pause_ms: int) -> tuple[np.ndarray, float]:
    """Find the comma's gap (the longest quiet run inside the utterance) and stretch it to ``pause_ms``.

    Returns the new audio and where the speech after the gap starts (seconds).
    """
    hop = SAMPLE_RATE // 100
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    level = 20 * np.log10(np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) + 1e-9)
    quiet = level < level.max() - 35.0
    voiced = np.flatnonzero(~quiet)
    first, last = int(voiced[0]), int(voiced[-1])
    best, best_len, i = 0, 0, first
    while i < last:
        if quiet[i]:
            j = i
            while j < last and quiet[j]:
                j += 1
            if j - i > best_len:
                best, best_len = i, j - i
            i = j
        else:
            i += 1
    gap_ms = best_len * 10
    middle = (best + best_len // 2) * hop
    extra = np.zeros(max(0, int((pause_ms - gap_ms) * SAMPLE_RATE / 1000)), np.float32)
    out = np.concatenate([audio[:middle], extra, audio[middle:]])
    return out, ((best + best_len) * hop + len(extra)) / SAMPLE_RATE


def corpus(config: Config, progress: Callable[[str], None], per_voice: int | None = None) -> list[Utterance]:
    """Every utterance (or the first ``per_voice`` of each kind), spoken by every voice of :data:`VOICES`
    (repeatable: Piper's noise off)."""
    catalogue = load_catalogue(cache_dir=Path(config.models_dir).expanduser() if config.models_dir else None)
    out: list[Utterance] = []
    lead = np.zeros(int(LEAD_S * SAMPLE_RATE), np.float32)
    tail = np.zeros(int(TAIL_S * SAMPLE_RATE), np.float32)
    for v, (spec, pace) in enumerate(VOICES):
        voice = open_voice(spec, catalogue, replace(config.tts, length_scale=pace, noise_scale=0.0, noise_w=0.0))
        name = f"{spec.split(':')[-1].replace('piper-', '')} x{pace:g}"
        progress(f"speaking the utterances: {name}")

        def say(text: str) -> np.ndarray:
            return resample(voice.synthesize(text), voice.sample_rate, SAMPLE_RATE)  # noqa: B023

        for i, text in enumerate(PAUSED[:per_voice]):
            speech, resume = stretch_gap(say(text), PAUSES_MS[(i + v) % len(PAUSES_MS)])
            out.append(Utterance(name, text, np.concatenate([lead, speech, tail]), LEAD_S + resume))
        for text in FINISHED[:per_voice]:
            out.append(Utterance(name, text, np.concatenate([lead, say(text), tail]), None))
    return out


def _both(stt: Callable[[], str], turn: Callable[[], float]) -> tuple[str, float, float, float]:
    """Run the transcription and the end-of-turn model at once, as the listener's two workers do;
    each result with the seconds it took from the common start."""
    got: dict[str, Any] = {}
    t0 = time.perf_counter()

    def run(key: str, fn: Callable[[], Any]) -> None:
        got[key] = fn()
        got[key + "_s"] = time.perf_counter() - t0

    threads = [threading.Thread(target=run, args=("stt", stt)), threading.Thread(target=run, args=("turn", turn))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return got["stt"], got["stt_s"], got["turn"], got["turn_s"]


def _text(stt: WhisperEngine, audio: np.ndarray) -> str:
    return stt.transcribe(audio).text


def front_end(utt: Utterance, vad: SileroVad, detector: EndOfTurnDetector, stt: WhisperEngine,
              model: SmartTurn, judge: Callable[[str], float | None] | None = None,
              early: float | None = None) -> Record:
    """Run one utterance through VAD, the detector and (at each pause) both models, then ``judge``
    (the chat LLM's end-of-words probability) on the transcript, as the llm worker does after it.

    ``early`` (Smart Turn's threshold): as the listener does when it asks the model at every pause,
    ask it at the first silent chunk (:data:`~..listen.VOICE_ASK_CHUNKS`), alone, and start the
    pause as soon as it answers "finished" (at or above ``early``); the pause's Whisper then runs
    alone, and its times count from that chunk, the model's wait included."""
    vad.reset()
    detector.reset()
    rec = Record(utt)
    n = len(utt.audio) // CHUNK
    asked: tuple[float, float, float, int] | None = None  # speech end, probability, seconds, chunk
    for i in range(n):
        samples = utt.audio[i * CHUNK:(i + 1) * CHUNK]
        t = (i + 1) * CHUNK_MS / 1000.0
        voiced = vad(samples) >= 0.5
        events: list[TurnEvent] = list(detector.process(samples, voiced, t))
        if early is not None and not events and detector.silence_chunks == VOICE_ASK_CHUNKS \
                and (asked is None or asked[0] != detector.speech_end_t):
            t0 = time.perf_counter()
            p_early = model.probability(detector.utterance())
            asked = (detector.speech_end_t, p_early, time.perf_counter() - t0, i)
            if p_early >= early:
                events = list(detector.pause_now())
        for event in events:
            if isinstance(event, SpeechStarted):
                rec.starts.append(i)
            elif isinstance(event, SpeechResumed):
                rec.resumes[i] = event.t
            elif isinstance(event, SpeechPaused):
                if asked is not None and asked[0] == event.speech_end_t:  # answered at the first silence
                    t0 = time.perf_counter()
                    text = _text(stt, event.audio)
                    since = max(0.0, asked[2] - (i - asked[3]) * CHUNK_MS / 1000.0)  # its wait left
                    stt_s, p, turn_s = since + time.perf_counter() - t0, asked[1], since
                else:
                    text, stt_s, p, turn_s = _both(partial(_text, stt, event.audio),
                                                   partial(model.probability, event.audio))
                end_p, end_p_s = None, 0.0
                if judge is not None and text.strip():
                    t0 = time.perf_counter()
                    end_p = judge(text)
                    end_p_s = stt_s + time.perf_counter() - t0
                rec.pauses[i] = Pause(i, text, stt_s, p, turn_s, end_p, end_p_s)
            elif isinstance(event, TurnEnded):
                rec.speech_end_s = event.speech_end_t
                rec.ends.append(i)
        rec.silence.append(detector.silence_chunks)
        if voiced and detector.in_speech:
            rec.speech_end_s = t
    return rec


@dataclass
class Outcome:
    end_s: float | None
    reason: str
    taken_back: int = 0
    held_s: float = 0.0
    """How long the hold kept back a reply that would have been ready ``reply_s`` after the end."""


@dataclass(frozen=True)
class TakeBack:
    """The listener's take-back (``[vad] take_back_ms``), as the replay applies it."""

    reply_s: float
    """The least time from an early end to the first reply audio: a wearer heard going on before it
    takes the turn back."""
    window_s: float
    """The longest pause taken back (``take_back_ms``)."""
    onset_s: float
    """Speech the detector needs to hear before it says speech started again (``min_speech_ms``)."""
    hold: bool = False
    """``[vad] hold_reply``: no reply is heard before ``window_s + onset_s`` after the last word, so
    every resumption within the window is heard in time."""
    hold_below: float = 0.0
    """``[vad] hold_below``: held so only while the chat LLM's end-of-words probability is below this;
    a trusted one is let go when the judgement comes, and one with none (not the chat's) is not held."""
    voice_doubt: float = 0.0
    """With ``hold_below``: held so also while Smart Turn's probability that the voice has finished is
    below this (the policy's ``doubt``; 0: the voice is not asked)."""
    onset_hold: bool = True
    """The listener's onset hold: a voiced chunk heard in the window before the reply's first audio
    holds it while the detector decides whether the wearer is speaking (``onset_s``), so a wearer
    heard going on before the reply starts takes the turn back even if the detector says so later."""

    def heard_s(self, decided_s: float, last_word_s: float, end_p: float | None = None,
                judged_s: float | None = None, voice_p: float | None = None, voiced_s: float = 0.0) -> float:
        """When the reply to a turn ended at ``decided_s`` is first heard (``end_p``: the words'
        end-of-turn probability, known at ``judged_s``; ``voice_p``: Smart Turn's, known at ``voiced_s``)."""
        ready = decided_s + self.reply_s
        window = last_word_s + self.window_s + self.onset_s
        if self.hold:
            return max(ready, window)
        if self.hold_below <= 0 or end_p is None:
            return ready  # not held, or nothing judged (a tool's turn in the loop): not held
        voice = voice_p if self.voice_doubt > 0 else None  # None: the voice is not asked
        if end_p < self.hold_below or (voice is not None and voice < self.voice_doubt):
            return max(ready, window)
        if judged_s is None:
            return ready
        let_go = judged_s if voice is None else max(judged_s, voiced_s)
        return max(ready, min(window, let_go))  # held until both judgements let it go


def replay(rec: Record, policy: EndOfTurnPolicy, take_back: TakeBack | None = None) -> Outcome:
    """When ``policy`` would have ended the turn over ``rec`` (the first end after speech started, or
    with ``take_back`` the first one not taken back), deciding at each chunk and the moment each model
    result arrives, as the listener does."""
    started = False
    transcript_at: tuple[float, str] | None = None
    acoustic_at: tuple[float, float] | None = None
    taken, skip_to = 0, -1
    current: Pause | None = None
    for i, silence in enumerate(rec.silence):
        t = (i + 1) * CHUNK_MS / 1000.0
        if i < skip_to:
            continue
        if i == skip_to:
            policy.started()  # the listener's detector starts afresh, holding the turn taken back
            transcript_at, acoustic_at = None, None
            continue
        if i in rec.starts:
            policy.started()
            started, transcript_at, acoustic_at = True, None, None
        if not started:
            continue
        if i in rec.ends:  # the detector's own limit: the policy ran out of patience
            return Outcome(t, "patience" if policy.uses_acoustic else "silence")
        if i in rec.resumes:
            policy.resumed(rec.resumes[i])
            transcript_at, acoustic_at = None, None  # the speculation is dropped
        pause = rec.pauses.get(i)
        if pause is not None:
            current = pause
            transcript_at = (t + pause.stt_s, pause.transcript)
            speech_end = t - silence * CHUNK_MS / 1000.0
            asked = policy.paused(speech_end, silence * CHUNK_MS, transcribing=True)
            acoustic_at = (t + pause.turn_s, pause.probability) if asked else None
        if silence == 0:
            continue
        # Results that arrive before the next chunk are decided on at once (the listener's callbacks).
        moments = sorted({t} | {m[0] for m in (transcript_at, acoustic_at) if m is not None and t <= m[0] < t + 0.032})
        for moment in moments:
            if acoustic_at is not None and acoustic_at[0] <= moment:
                policy.acoustic(acoustic_at[1])
                acoustic_at = (float("inf"), acoustic_at[1])
            text = transcript_at[1] if transcript_at is not None and transcript_at[0] <= moment else None
            verdict = policy.decide(silence * CHUNK_MS, text, transcribing=transcript_at is not None and text is None)
            if verdict.reason == "ask" and current is not None:
                # Asked only now (the words could not tell): it answers after the time it took at the
                # pause, when it ran beside Whisper (an upper bound: alone it would be quicker).
                acoustic_at = (moment + current.turn_s, current.probability)
            if not verdict.end:
                continue
            held = 0.0
            if take_back is not None and verdict.reason == "finished":
                later = [k for k in rec.resumes if k > i]
                resume = rec.resumes[min(later)] if later else None
                last_word = t - silence * CHUNK_MS / 1000.0
                judged = None if current is None else (current.chunk + 1) * CHUNK_MS / 1000.0 + current.end_p_s
                voice_p, voiced = None, 0.0
                if current is not None and policy.ask_always:
                    voice_p, voiced = current.probability, (current.chunk + 1) * CHUNK_MS / 1000.0 + current.turn_s
                heard = take_back.heard_s(moment, last_word, current.end_p if current else None, judged,
                                          voice_p, voiced)
                onset = 0.0 if take_back.onset_hold else take_back.onset_s
                if resume is not None and resume - last_word <= take_back.window_s and resume + onset <= heard:
                    taken, skip_to = taken + 1, min(later)
                    break  # the wearer went on before the reply was heard: the turn goes on
                held = heard - (moment + take_back.reply_s)
            return Outcome(moment, verdict.reason, taken, held)
    return Outcome(None, "no end", taken)


def record_to_json(r: Record) -> dict[str, Any]:
    """What the front end saw of one utterance: enough to replay any policy on it (``--replay``)."""
    return {"voice": r.utt.voice, "text": r.utt.text, "resume_s": r.utt.resume_s, "speech_end_s": r.speech_end_s,
            "silence": r.silence, "starts": r.starts, "resumes": {str(k): v for k, v in r.resumes.items()},
            "ends": r.ends,
            "pauses": [{"chunk": p.chunk, "transcript": p.transcript, "probability": p.probability,
                        "stt_s": p.stt_s, "turn_s": p.turn_s, "end_p": p.end_p, "end_p_s": p.end_p_s}
                       for p in r.pauses.values()]}


def record_from_json(d: dict[str, Any]) -> Record:
    utt = Utterance(d["voice"], d["text"], np.zeros(0, np.float32), d["resume_s"])
    pauses = {p["chunk"]: Pause(p["chunk"], p["transcript"], p["stt_s"], p["probability"], p["turn_s"],
                                p.get("end_p"), p.get("end_p_s", 0.0)) for p in d["pauses"]}
    return Record(utt, list(d["silence"]), list(d["starts"]), {int(k): v for k, v in d["resumes"].items()},
                  pauses, d["speech_end_s"], list(d.get("ends", [])))


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values), q))


def score(records: list[Record], make: Callable[[], EndOfTurnPolicy],
          take_back: TakeBack | None = None) -> dict[str, Any]:
    """False cut-offs, missed ends and end-of-turn waits of one policy over every record."""
    cut, cut_finished, missed, waits_finished, waits_all, rows = 0, 0, 0, [], [], []
    taken, held_finished = 0, []
    paused = [r for r in records if r.utt.resume_s is not None]
    for rec in records:
        out = replay(rec, make(), take_back)
        taken += out.taken_back
        # Ended before the wearer's last word: also when the wearer had just gone on and the VAD had
        # not heard it yet (the reply would start over their voice).
        is_cut = out.end_s is not None and out.end_s < rec.speech_end_s
        rows.append({"voice": rec.utt.voice, "text": rec.utt.text, "end_s": out.end_s, "reason": out.reason,
                     "cut_off": is_cut, "taken_back": out.taken_back, "held_ms": round(out.held_s * 1000.0, 1)})
        if rec.utt.resume_s is None and out.end_s is not None:
            held_finished.append(out.held_s * 1000.0)
        if is_cut:
            if rec.utt.resume_s is not None:
                cut += 1
            else:
                cut_finished += 1
            continue
        if out.end_s is None or out.reason != "finished":
            missed += 1
        if out.end_s is not None:
            wait_ms = (out.end_s - rec.speech_end_s) * 1000.0
            waits_all.append(wait_ms)
            if rec.utt.resume_s is None:
                waits_finished.append(wait_ms)
    n_fin = len(records) - len(paused)
    return {
        "false_cutoffs": cut, "cut_finished": cut_finished, "paused": len(paused),
        "false_cutoff_pct": 100.0 * cut / max(1, len(paused)),
        "missed_ends": missed, "utterances_not_cut": len(records) - cut - cut_finished,
        "missed_end_pct": 100.0 * missed / max(1, len(records) - cut - cut_finished),
        "wait_finished_p50_ms": _pct(waits_finished, 50), "wait_finished_p95_ms": _pct(waits_finished, 95),
        "wait_all_p50_ms": _pct(waits_all, 50), "wait_all_p95_ms": _pct(waits_all, 95),
        "finished": n_fin, "taken_back": taken, "rows": rows,
        "held_finished_p50_ms": _pct(held_finished, 50), "held_finished_p95_ms": _pct(held_finished, 95),
        "held_finished": sum(h > 0.5 for h in held_finished),
    }


def make_policy(name: str, config: Config, eager: bool = False, ask_always: bool = False) -> EndOfTurnPolicy:
    v = config.vad
    return EndOfTurnPolicy(name, min_end_ms=v.min_end_silence_ms, end_silence_ms=v.end_silence_ms,
                           patience_ms=v.patience_ms, threshold=v.turn_threshold, burst_ms=v.burst_ms, eager=eager,
                           ask_always=ask_always)


def record_all(config: Config, per_voice: int | None, progress: Callable[[str], None]
               ) -> tuple[list[Record], list[Record]]:
    """Speak the corpus and run every utterance through the front end with the real models: once as
    the listener hears it when Smart Turn is asked only at the pause, once as it hears it when the
    model is asked at every pause (from the first silent chunk; the ``ask_always`` policies)."""
    catalogue = load_catalogue(cache_dir=Path(config.models_dir).expanduser() if config.models_dir else None)
    vad = SileroVad(catalogue.resolve("vad", config.vad.model)[0])
    stt = WhisperEngine(catalogue.resolve("stt", config.stt.model)[0], config.stt)
    model = SmartTurn(catalogue.resolve("turn", config.vad.turn_model)[0], threads=2)  # as the loop's
    stt.transcribe(np.zeros(SAMPLE_RATE, np.float32))
    model.probability(np.zeros(SAMPLE_RATE, np.float32))
    progress("loading the chat LLM (its end-of-words judgement: [vad] hold_below)")
    llm = LlamaEngine(catalogue.resolve("llm", config.llm.wanted)[0], config.llm)
    system = {"role": "system", "content": config.llm.system_prompt}

    def judge(text: str) -> float | None:
        return llm.end_probability([system, {"role": "user", "content": text}])

    judge("Hello.")  # the system prompt, evaluated once as the loop's warm-up does
    utterances = corpus(config, progress, per_voice)
    v = config.vad
    patience = max(v.patience_ms, v.end_silence_ms)
    detector = EndOfTurnDetector(min_speech_ms=v.min_speech_ms, pause_ms=v.pause_ms, end_silence_ms=patience,
                                 pre_roll_ms=v.pre_roll_ms, max_utterance_ms=int(v.max_utterance_s * 1000))
    passes: list[list[Record]] = []
    for name, early in (("front end", None), ("front end, Smart Turn at the first silence", v.turn_threshold)):
        records: list[Record] = []
        t0 = time.perf_counter()
        for k, utt in enumerate(utterances, 1):
            records.append(front_end(utt, vad, detector, stt, model, judge, early))
            if k % 32 == 0 or k == len(utterances):
                progress(f"{name}: {k}/{len(utterances)} utterances ({time.perf_counter() - t0:.0f} s)")
        passes.append(records)
    return passes[0], passes[1]


def run_turn_bench(config: Config, *, json_path: Path | None = None, per_voice: int | None = None,
                   replay_path: Path | None = None, reply_ms: int = REPLY_MS,
                   progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Record the corpus through the front end once (or load the record of an earlier ``--json``),
    replay every policy with ``config``'s settings; print and return the report."""
    load_before = os.getloadavg()
    if replay_path is not None:
        try:
            earlier = json.loads(replay_path.read_text())
            records = [record_from_json(d) for d in earlier["records"]]
            # A record from before the early pass: the ask-always policies replay the plain one.
            asking_records = [record_from_json(d) for d in earlier.get("early_records", earlier["records"])]
            load_before = tuple(earlier.get("load_average", load_before))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"--replay {replay_path}: not a `bench --turns --json` report ({err})") from None
    else:
        records, asking_records = record_all(config, per_voice, progress)
    stt_s = [p.stt_s for r in records for p in r.pauses.values()]
    turn_s = [p.turn_s for r in records for p in r.pauses.values()]
    v = config.vad
    report: dict[str, Any] = {
        "voices": sorted({r.utt.voice for r in records}), "paused": sum(r.utt.resume_s is not None for r in records),
        "finished": sum(r.utt.resume_s is None for r in records), "pauses_ms": list(PAUSES_MS),
        "load_average": list(load_before), "replayed_from": str(replay_path) if replay_path else None,
        "config": {"min_end_silence_ms": v.min_end_silence_ms, "end_silence_ms": v.end_silence_ms,
                   "patience_ms": v.patience_ms, "turn_threshold": v.turn_threshold, "pause_ms": v.pause_ms},
        "speculative_stt_ms_p50": 1000 * statistics.median(stt_s) if stt_s else None,
        "smart_turn_ms_p50": 1000 * statistics.median(turn_s) if turn_s else None,
        "policies": {name: score(records, partial(make_policy, name, config)) for name in POLICY_NAMES},
        "reply_ms": reply_ms,
        "records": [record_to_json(r) for r in records],
        "early_records": [record_to_json(r) for r in asking_records],
    }
    # The shipped behaviour: the combined policy, eager (a finished transcript need not wait for the
    # model), and an early end taken back if the wearer goes on before the reply is heard.
    take_back = TakeBack(reply_ms / 1000.0, v.take_back_ms / 1000.0, v.min_speech_ms / 1000.0)
    eager = partial(make_policy, "combined", config, True)
    report["policies"]["combined+take-back"] = score(records, eager, take_back)
    report["policies"]["take-back+hold"] = score(records, eager, replace(take_back, hold=True))
    report["hold_below"] = v.hold_below or VadConfig.hold_below  # off: the default's, to compare
    doubt = replace(take_back, hold_below=report["hold_below"])
    report["hold_voice_below"] = v.hold_voice_below or VadConfig.hold_voice_below
    voice = replace(doubt, voice_doubt=report["hold_voice_below"])
    asking = partial(make_policy, "combined", config, True, True)  # Smart Turn at every pause, for the hold
    report["policies"]["doubt: words"] = score(records, eager, doubt)
    report["policies"]["doubt: words+voice"] = score(asking_records, asking, voice)
    report["policies"]["... no onset hold"] = score(asking_records, asking, replace(voice, onset_hold=False))
    report["policies"]["words, no onset hold"] = score(records, eager, replace(doubt, onset_hold=False))  # stop 28's
    report["default"] = ("take-back+hold" if v.hold_reply else "combined+take-back" if v.hold_below <= 0
                         else "doubt: words+voice" if v.hold_voice_below > 0 else "doubt: words")
    progress(format_turn_table(report))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=1))
    return report


def format_turn_table(report: dict[str, Any]) -> str:
    def ms(x: float | None) -> str:
        return "-" if x is None else f"{x:.0f}"

    load = ", ".join(f"{x:.1f}" for x in report["load_average"])
    lines = [
        f"load average before the run (1, 5, 15 min) on {os.cpu_count()} CPUs: {load}"
        + (f"; replayed from {report['replayed_from']}" if report["replayed_from"] else ""),
        f"turn-taking: {report['paused']} utterances with a 300-900 ms mid-sentence pause, {report['finished']} "
        f"finished ones; voices {', '.join(report['voices'])}",
        f"models at each pause (run together): speculative Whisper {ms(report['speculative_stt_ms_p50'])} ms p50, "
        f"Smart Turn {ms(report['smart_turn_ms_p50'])} ms p50",
        f"take-back: an early end is taken back if the wearer is heard going on within {report['reply_ms']} ms "
        "(before the reply's first audio; a voiced chunk then holds the reply while the detector decides, except "
        "'no onset hold'); hold: its reply waits for the take-back window; doubt: it waits only while the chat "
        f"LLM's end-of-words probability is below {report.get('hold_below', '-')} (words), or Smart Turn's is "
        f"below {report.get('hold_voice_below', '-')} (voice); default: {report.get('default', '-')}",
        f"{'policy':<19} {'false cut-offs':>16} {'(finished)':>10} {'missed ends':>13} "
        f"{'wait finished p50/p95':>22} {'wait all p50/p95':>17} {'taken back':>10} {'held p50/p95':>13} "
        f"{'held (finished)':>15}",
    ]
    for name, s in report["policies"].items():
        lines.append(
            f"{name:<19} {s['false_cutoffs']:>4}/{s['paused']:<3} {s['false_cutoff_pct']:5.1f} % "
            f"{s['cut_finished']:>4}/{s['finished']:<5} "
            f"{s['missed_ends']:>4} {s['missed_end_pct']:5.1f} % "
            f"{ms(s['wait_finished_p50_ms']):>11} / {ms(s['wait_finished_p95_ms']):<8} "
            f"{ms(s['wait_all_p50_ms']):>7} / {ms(s['wait_all_p95_ms']):<7} {s['taken_back']:>6} "
            f"{ms(s['held_finished_p50_ms']):>6} / {ms(s['held_finished_p95_ms']):<5} "
            f"{s.get('held_finished', 0):>6}/{s['finished']:<3}")
    return "\n".join(lines)
