# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings: frozen dataclasses per stage, read from TOML and overridden by flags.

Every field of a stage becomes a TOML key in that stage's table and a command-line
flag ``--<stage>-<field>`` (``[vad] end_silence_ms`` is ``--vad-end-silence-ms``),
so the file and the flags can never drift apart. Each stage checks its values in
``__post_init__`` and reports a bad one in one line naming the flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import sys
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .safefile import MIB, decode_text, read_limited

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_SYSTEM_PROMPT = (
    "You are a voice assistant in a pair of smart glasses. "
    'Say the answer first, in a few words, then stop or add one short sentence, as in "Lisbon. It is the '
    'capital of Portugal." '
    "You cannot know the wearer's own life, family, pets, plans or past unless they told you, nor the future or "
    'what someone thinks: then say "I don\'t know." '
    "Never use lists, markdown, emoji or code."
)
"""The default persona's prompt (personas/default.toml), tuned on the quality benchmark with the 1.5B: the
answer first makes the first spoken phrase a word or two ("Paris."), the honesty sentence took "I don't
know" on unanswerable questions from 15 % to 100 %, and the whole answer right from 81 % to 98 % (README)."""


MAX_CONFIG_BYTES = MIB
"""A config (or persona) file is a few hundred bytes; anything over 1 MiB is not one."""


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: a 400-digit number must not make a 400-character error."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check(ok: bool, flag: str, rule: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{flag} {rule} (got {shown(value)})")


@dataclass(frozen=True)
class MicConfig:
    """Live microphone and speaker (sounddevice / PortAudio)."""

    device: str | None = None
    """Input device name or index; None is the system default."""
    speaker: str | None = None
    """Output device name or index; None is the system default."""
    block_ms: int = 32
    """Capture block length in milliseconds."""

    def __post_init__(self) -> None:
        _check(10 <= self.block_ms <= 200, "--mic-block-ms", "must be 10..200", self.block_ms)


END_POLICIES = ("combined", "smart-turn", "punctuation", "silence")
"""``[vad] end_policy`` choices (:mod:`.turn_policy`)."""


@dataclass(frozen=True)
class VadConfig:
    """Voice activity detection and end-of-turn detection."""

    model: str | None = None
    """Catalogue id or path of a Silero VAD ONNX model; None is the catalogue default."""
    threshold: float = 0.5
    """Speech probability above which a 32 ms chunk counts as speech."""
    min_speech_ms: int = 120
    """Speech shorter than this (a click, a cough) does not start a turn."""
    end_silence_ms: int = 800
    """Silence after speech that always ends the wearer's turn (the most we wait)."""
    min_end_silence_ms: int = 200
    """Silence after which the turn ends early if the speculative transcript reads as a finished sentence."""
    pause_ms: int = 100
    """Silence after which a speculative transcription starts (dropped if speech resumes)."""
    pre_roll_ms: int = 300
    """Audio kept from before the detected speech start, so first syllables are not clipped."""
    max_utterance_s: float = 30.0
    """An utterance is cut here (Whisper's window); speech past it is ignored until a pause."""
    end_policy: str = "combined"
    """What ends a turn early (:mod:`..turn_policy`): combined (the end-of-turn model and the transcript),
    smart-turn (the model alone), punctuation (the transcript reads as finished) or silence (never early)."""
    turn_model: str | None = None
    """Catalogue id or path of the Smart Turn v3 ONNX end-of-turn model; None is the catalogue default."""
    turn_threshold: float = 0.5
    """The end-of-turn model's probability at or above which the wearer counts as finished."""
    patience_ms: int = 1500
    """Silence we wait for at most when the turn is judged unfinished (combined, smart-turn)."""
    burst_ms: int = 300
    """A voiced burst in a pause shorter than this (a cough, a voice nearby) neither ends nor extends the turn."""
    take_back_ms: int = 1000
    """A turn ended early is taken back when the wearer speaks again after a pause no longer than this
    and before any of the reply is heard: the pause was mid-sentence, and both halves become one
    question (0: never). Longer would fold a second question, asked before the answer, into the first."""
    hold_reply: bool = False
    """On: the reply to a turn that ended early is not heard until that turn can no longer be taken
    back (``take_back_ms`` of pause, plus ``min_speech_ms``, after the wearer's last word), so a wearer
    who pauses up to ``take_back_ms`` mid-sentence is never answered over; a reply ready sooner waits
    (on this 2-core machine p50 1196 ms instead of 712 ms). Off (default): the reply is heard as soon
    as it is ready, and a wearer who goes on after it started gets a second turn."""
    hold_below: float = 0.95
    """With ``hold_reply`` off: the reply to a turn that ended early is held as above only while the
    chat LLM doubts that the wearer's words end there, i.e. its probability of the chat template's
    end of turn right after the speculative transcript is below this ("Remind me." 0.69, "Set an
    alarm." 0.63, "Thank you." 0.55; "What is the capital of France?" 0.98). Judged on the llm
    worker just before the preemptive answer (one pass through the model, about 30 ms here), so a
    question it trusts is not held. A turn the chat LLM would not answer (a tool, translation, the
    camera, a server) is neither judged nor held. 0: never held; 1: always, as ``hold_reply``."""
    hold_voice_below: float = 0.25
    """With ``hold_below``: a judged reply is held too while Smart Turn's probability that the voice
    has finished is below this: a first half that reads as a whole question ("How far is it from
    London?" 0.97 to the chat LLM) but was said as a phrase that goes on (0.20 heard at the first
    silent chunk). With it Smart Turn is asked at every pause, already at the first silent chunk,
    alone on the cores, and a voice it hears finished starts the pause (and the speculative Whisper)
    at once. 0: the voice is not asked for the hold."""

    def __post_init__(self) -> None:
        _check(0.0 < self.threshold < 1.0, "--vad-threshold", "must be between 0 and 1", self.threshold)
        _check(self.end_policy in END_POLICIES, "--vad-end-policy", f"must be one of {', '.join(END_POLICIES)}",
               self.end_policy)
        _check(0.0 < self.turn_threshold < 1.0, "--vad-turn-threshold", "must be between 0 and 1",
               self.turn_threshold)
        _check(
            self.end_silence_ms <= self.patience_ms <= 10_000, "--vad-patience-ms",
            f"must be end_silence_ms ({self.end_silence_ms})..10000", self.patience_ms,
        )
        _check(0 <= self.burst_ms <= 2000, "--vad-burst-ms", "must be 0..2000", self.burst_ms)
        _check(0 <= self.take_back_ms <= 10_000, "--vad-take-back-ms", "must be 0..10000", self.take_back_ms)
        _check(0.0 <= self.hold_below <= 1.0, "--vad-hold-below", "must be between 0 and 1", self.hold_below)
        _check(0.0 <= self.hold_voice_below <= 1.0, "--vad-hold-voice-below", "must be between 0 and 1",
               self.hold_voice_below)
        _check(0 <= self.min_speech_ms <= 2000, "--vad-min-speech-ms", "must be 0..2000", self.min_speech_ms)
        _check(
            100 <= self.end_silence_ms <= 5000, "--vad-end-silence-ms", "must be 100..5000",
            self.end_silence_ms,
        )
        _check(
            0 < self.min_end_silence_ms <= self.end_silence_ms, "--vad-min-end-silence-ms",
            f"must be 1..end_silence_ms ({self.end_silence_ms})", self.min_end_silence_ms,
        )
        _check(
            0 < self.pause_ms <= self.end_silence_ms, "--vad-pause-ms",
            f"must be 1..end_silence_ms ({self.end_silence_ms})", self.pause_ms,
        )
        _check(0 <= self.pre_roll_ms <= 2000, "--vad-pre-roll-ms", "must be 0..2000", self.pre_roll_ms)
        _check(
            1.0 <= self.max_utterance_s <= 30.0, "--vad-max-utterance-s", "must be 1..30 seconds",
            self.max_utterance_s,
        )


@dataclass(frozen=True)
class SttConfig:
    """Speech recognition with faster-whisper."""

    model: str | None = None
    """Catalogue id (whisper-tiny-en, whisper-base) or a CTranslate2 Whisper folder."""
    language: str | None = "en"
    """Spoken language code, or None to detect it (multilingual models only)."""
    beam_size: int = 1
    """1 is greedy decoding: fastest, and as good on short commands."""
    threads: int = 2
    """CPU threads for the encoder and decoder."""
    compute_type: str = "int8"
    """CTranslate2 compute type: int8, int8_float32, float32, float16 (GPU)."""
    device: str = "cpu"
    """cpu, cuda or auto."""
    window_s: int = 10
    """Encoder window in seconds (30 is Whisper's own); shorter is faster, longer speech widens it."""
    speculative: bool = True
    """Start transcribing at the first pause, before the turn is known to have ended."""

    def __post_init__(self) -> None:
        _check(1 <= self.beam_size <= 10, "--stt-beam-size", "must be 1..10", self.beam_size)
        _check(1 <= self.threads <= 64, "--stt-threads", "must be 1..64", self.threads)
        _check(5 <= self.window_s <= 30, "--stt-window-s", "must be 5..30", self.window_s)
        _check(self.device in ("cpu", "cuda", "auto"), "--stt-device", "must be cpu, cuda or auto", self.device)
        if self.language is not None:
            _check(
                self.language.isalpha() and 2 <= len(self.language) <= 3, "--stt-language",
                "must be a 2- or 3-letter language code", self.language,
            )


TINY_SYSTEM_PROMPT = (
    "You are a helpful voice assistant built into a pair of smart glasses. "
    "Answer in one or two short spoken sentences. "
    "Never use lists, markdown, emoji or code."
)
"""The default persona's prompt for SmolLM2-135M (the tiny profile): the prompt it was measured with. Given
the default prompt's example it says "Lisbon. It is the capital of Portugal." to every capital question."""
MODEL_PROMPTS = {
    "smollm2-135m-instruct-q4_1": TINY_SYSTEM_PROMPT,
    "SmolLM2-135M-Instruct.Q4_1.gguf": TINY_SYSTEM_PROMPT,  # the same file named by path
}
"""The default persona's prompt for a model it was tuned for, by catalogue id or GGUF file name."""

SHIPPED_LLMS = ("smollm2-135m-instruct-q4_1", "qwen2.5-coder-0.5b-q4_k_m", "qwen2.5-coder-1.5b-q4_k_m")
"""The chat GGUFs in the catalogue, smallest first: what the quality and translation benchmarks compare."""

LLM_PROFILES: dict[str, str | None] = {
    "default": None,
    "tiny": "smollm2-135m-instruct-q4_1",
}
"""``[llm] profile`` -> the catalogue model it loads (None: the catalogue's default chat model,
Qwen2.5-Coder-1.5B). ``tiny`` is SmolLM2-135M for boards with little memory (about 0.3 GB
resident instead of about 1.2 GB), at a measured cost in right answers (see README, Models)."""


@dataclass(frozen=True)
class LlmConfig:
    """The language model, run by llama.cpp through llama-cpp-python."""

    model: str | None = None
    """Catalogue id or a path to any chat GGUF (Llama-3.2-1B, Qwen2.5...); wins over profile."""
    profile: str = "default"
    """default (Qwen2.5-Coder-1.5B: the most accurate model that meets the latency target here) or
    tiny (SmolLM2-135M: for boards with little memory; often wrong). Ignored when model is set."""
    context: int = 2048
    """Context window in tokens; history is trimmed to fit."""
    max_tokens: int = 60
    """Longest reply in tokens (a spoken answer is short)."""
    temperature: float = 0.0
    """Sampling temperature; 0 is greedy: repeatable, and keeps a small model on topic."""
    threads: int = 2
    """CPU threads for generation."""
    gpu_layers: int = 0
    """Layers offloaded to the GPU (CUDA builds of llama.cpp); -1 is all."""
    chat_format: str | None = None
    """Force a llama-cpp-python chat format (chatml, llama-3...) for a GGUF with no template."""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    """What the assistant is told about itself before every conversation."""
    history_turns: int = 6
    """Past exchanges kept in the prompt at most (fewer when the context is short)."""
    mmap: bool = False
    """Map the GGUF instead of reading it into memory. Off: llama.cpp repacks the weights for the CPU's
    vector units, and with the file mapped too both copies stay resident (1.5B: 1.8 GB instead of 1.2 GB)."""
    prefill_every_ms: int = 500
    """While the wearer speaks, transcribe what was said so far every this much speech and evaluate it
    into the LLM's KV cache, so that little is left to evaluate when the turn ends (0: off)."""
    preemptive: bool = True
    """At the first pause, start generating the answer to the speculative transcript before the turn is
    known to have ended: kept when the turn ends with that transcript, dropped otherwise."""
    draft_model: str | None = None
    """Speculative decoding: a small GGUF with the same tokenizer drafts tokens that the chat model checks
    in one batch (qwen2.5-coder-0.5b-q4_k_m for the 1.5B). Off by default: see README, Latency."""
    draft_tokens: int = 4
    """Tokens the draft model proposes per step."""

    def __post_init__(self) -> None:
        _check(self.profile in LLM_PROFILES, "--llm-profile", f"must be one of {', '.join(LLM_PROFILES)}",
               self.profile)
        _check(256 <= self.context <= 131072, "--llm-context", "must be 256..131072", self.context)
        _check(
            8 <= self.max_tokens <= self.context // 2, "--llm-max-tokens",
            f"must be 8..{self.context // 2}", self.max_tokens,
        )
        _check(0.0 <= self.temperature <= 2.0, "--llm-temperature", "must be 0..2", self.temperature)
        _check(1 <= self.threads <= 64, "--llm-threads", "must be 1..64", self.threads)
        _check(self.gpu_layers >= -1, "--llm-gpu-layers", "must be -1 or more", self.gpu_layers)
        _check(bool(self.system_prompt.strip()), "--llm-system-prompt", "must not be empty", self.system_prompt)
        _check(0 <= self.history_turns <= 100, "--llm-history-turns", "must be 0..100", self.history_turns)
        _check(self.prefill_every_ms == 0 or 100 <= self.prefill_every_ms <= 10_000, "--llm-prefill-every-ms",
               "must be 0 (off) or 100..10000", self.prefill_every_ms)
        _check(1 <= self.draft_tokens <= 16, "--llm-draft-tokens", "must be 1..16", self.draft_tokens)

    @property
    def wanted(self) -> str | None:
        """The model to load: ``model`` if set, else the profile's (None: the catalogue default)."""
        return self.model if self.model else LLM_PROFILES[self.profile]

    @property
    def default_prompt(self) -> str:
        """The default persona's prompt for the model this loads (:data:`MODEL_PROMPTS`)."""
        wanted = self.wanted
        if wanted is None:
            return DEFAULT_SYSTEM_PROMPT
        name = wanted if wanted in MODEL_PROMPTS else Path(wanted).expanduser().resolve().name
        return MODEL_PROMPTS.get(name, DEFAULT_SYSTEM_PROMPT)


@dataclass(frozen=True)
class TtsConfig:
    """Speech synthesis with Piper."""

    voice: str | None = None
    """Catalogue id or the path of a Piper voice .onnx (its .onnx.json beside it)."""
    threads: int = 1
    """onnxruntime intra-op threads for the voice."""
    length_scale: float = 1.0
    """Speaking pace: below 1 is faster, above 1 slower."""
    volume: float = 1.0
    """Output gain, 0..2."""
    first_phrase_words: int = 4
    """The first phrase is spoken as soon as a clause of this many words is complete."""
    device: str = "cpu"
    """cpu, or cuda (needs onnxruntime-gpu; see docs/gpu.md)."""
    noise_scale: float | None = None
    """Piper's voice variation (None: the voice's own); 0 with noise_w 0 makes speech repeatable."""
    noise_w: float | None = None
    """Piper's phoneme-duration variation (None: the voice's own)."""

    def __post_init__(self) -> None:
        _check(1 <= self.threads <= 64, "--tts-threads", "must be 1..64", self.threads)
        _check(0.3 <= self.length_scale <= 3.0, "--tts-length-scale", "must be 0.3..3", self.length_scale)
        _check(0.0 <= self.volume <= 2.0, "--tts-volume", "must be 0..2", self.volume)
        _check(
            1 <= self.first_phrase_words <= 30, "--tts-first-phrase-words", "must be 1..30",
            self.first_phrase_words,
        )
        _check(self.device in ("cpu", "cuda"), "--tts-device", "must be cpu or cuda", self.device)
        for name in ("noise_scale", "noise_w"):
            value = getattr(self, name)
            _check(value is None or 0.0 <= value <= 2.0, f"--tts-{name.replace('_', '-')}", "must be 0..2", value)


@dataclass(frozen=True)
class VisionConfig:
    """Object recognition and text reading on the camera's frames."""

    enabled: str = "auto"
    """auto (when there is a camera: glasses or --camera), on, or off."""
    model: str | None = None
    """Catalogue id (yolov8n-coco, yolov8s-coco, nanodet-coco, centernet-coco) or a YOLO-style ONNX path;
    None is the default."""
    threshold: float | None = None
    """Detection score below which an object is not mentioned; None: the detector's calibrated value."""
    sure: float | None = None
    """Score from which an object is said as fact (between threshold and sure: "there might be ...");
    None: the detector's calibrated value."""
    ocr: bool = True
    """Load the text reader for "read this"."""
    phrasing: str = "plain"
    """How "what am I looking at?" is answered: plain (the sentence built from the calibrated detections,
    said the moment the detector is done) or llm (the chat model rewords those facts first, local or, with
    ``[remote] vision``, the server; a rewording that names anything not detected is dropped). Plain is the
    default: the 1.5B chat brain takes seconds to reword on two cores, and it says nothing more."""
    threads: int = 2
    """onnxruntime threads for the detector and the OCR."""
    photo_dir: str = "~/Pictures/glasses"
    """Where "take a photo" saves JPEGs (with a JSON sidecar of time and device metadata)."""

    def __post_init__(self) -> None:
        _check(self.enabled in ("auto", "on", "off"), "--vision-enabled", "must be auto, on or off", self.enabled)
        _check(self.phrasing in ("plain", "llm"), "--vision-phrasing", "must be plain or llm", self.phrasing)
        for flag, value in (("--vision-threshold", self.threshold), ("--vision-sure", self.sure)):
            _check(value is None or 0.0 < value < 1.0, flag, "must be between 0 and 1", value)
        if self.threshold is not None and self.sure is not None:
            _check(self.threshold <= self.sure, "--vision-sure", "must not be below --vision-threshold", self.sure)
        _check(1 <= self.threads <= 64, "--vision-threads", "must be 1..64", self.threads)


@dataclass(frozen=True)
class ListenConfig:
    """When the assistant listens: wake word, tap on the glasses, or always; follow-ups; privacy."""

    mode: str = "auto"
    """wake (wake word or tap), tap (tap or long press only), always, or auto: wake for live input
    (--mic, --device), always for files, --text and --sim."""
    wake_word: str = "hey_mycroft"
    """hey_mycroft, okay_nabu, alexa or hey_jarvis (the models in the pymicro-wakeword wheel); hey_mycroft
    missed fewest wake phrases and woke least on real speech (tools/wakeword_eval.py)."""
    wake_sensitivity: str = "normal"
    """strict (wakes least by mistake), normal or loose (misses fewest wake phrases): the detector's
    cutoff and the score the second stage must give the wake phrase, per word (README, Hands-free)."""
    wake_verify: bool = True
    """Check each firing of the detector with the loaded Whisper on the pre-roll, and wake only when
    it heard the phrase (off: the detector alone decides, about 0.1 s sooner; its tuned cutoffs count on
    the check, so set wake_threshold too: hey_mycroft alone at 0.95 woke 0.83 times an hour on real speech)."""
    wake_threshold: float = 0.0
    """Wake word probability cutoff; 0 takes it from wake_sensitivity."""
    wake_pre_roll_ms: int = 600
    """Audio kept from before the wake word fired, so a request said without a pause is not clipped."""
    follow_up_s: float = 6.0
    """After an answer, the wearer may speak again without the wake word for this long (0: off)."""
    timeout_s: float = 8.0
    """After a wake word or a tap, give up listening when no speech starts within this."""
    watchdog_s: float = 120.0
    """Any state lasting longer than this returns to idle (nothing can stay stuck)."""
    debug_recording: str | None = None
    """A folder: keep each turn's microphone audio there as WAV. Off by default: no audio is kept."""

    def __post_init__(self) -> None:
        _check(self.mode in ("auto", "wake", "tap", "always"), "--listen-mode",
               "must be auto, wake, tap or always", self.mode)
        _check(self.wake_word in ("okay_nabu", "hey_jarvis", "alexa", "hey_mycroft"), "--listen-wake-word",
               "must be okay_nabu, hey_jarvis, alexa or hey_mycroft", self.wake_word)
        _check(self.wake_sensitivity in ("strict", "normal", "loose"), "--listen-wake-sensitivity",
               "must be strict, normal or loose", self.wake_sensitivity)
        _check(0.0 <= self.wake_threshold < 1.0, "--listen-wake-threshold", "must be 0..1", self.wake_threshold)
        _check(0 <= self.wake_pre_roll_ms <= 2000, "--listen-wake-pre-roll-ms", "must be 0..2000",
               self.wake_pre_roll_ms)
        _check(0.0 <= self.follow_up_s <= 60.0, "--listen-follow-up-s", "must be 0..60", self.follow_up_s)
        _check(1.0 <= self.timeout_s <= 60.0, "--listen-timeout-s", "must be 1..60",
               self.timeout_s)
        _check(10.0 <= self.watchdog_s <= 3600.0, "--listen-watchdog-s", "must be 10..3600", self.watchdog_s)


@dataclass(frozen=True)
class BargeInConfig:
    """Interrupting the assistant by talking over it (live input)."""

    mode: str = "barge-in"
    """barge-in (talk over the assistant to stop it) or half-duplex (the microphone is ignored while it speaks)."""
    min_speech_ms: int = 200
    """The wearer's voice needed before it counts as an interruption (a cough is shorter)."""
    window_ms: int = 350
    """...heard within this window (gaps between syllables do not reset the count)."""
    echo_margin_db: float = 6.0
    """How much louder than the measured echo of the assistant's own voice a sound must be to count."""
    echo_max_delay_ms: int = 120
    """Longest speaker-to-microphone delay the echo guard searches (device buffers included)."""
    echo_initial_db: float = -3.0
    """Echo level assumed before it has been measured (loud: cautious)."""

    def __post_init__(self) -> None:
        _check(self.mode in ("barge-in", "half-duplex"), "--bargein-mode", "must be barge-in or half-duplex",
               self.mode)
        _check(32 <= self.min_speech_ms <= 2000, "--bargein-min-speech-ms", "must be 32..2000", self.min_speech_ms)
        _check(self.min_speech_ms <= self.window_ms <= 4000, "--bargein-window-ms",
               f"must be {self.min_speech_ms}..4000", self.window_ms)
        _check(0.0 <= self.echo_margin_db <= 30.0, "--bargein-echo-margin-db", "must be 0..30", self.echo_margin_db)
        _check(0 <= self.echo_max_delay_ms <= 500, "--bargein-echo-max-delay-ms", "must be 0..500",
               self.echo_max_delay_ms)
        _check(-40.0 <= self.echo_initial_db <= 10.0, "--bargein-echo-initial-db", "must be -40..10",
               self.echo_initial_db)


@dataclass(frozen=True)
class RemoteConfig:
    """A bigger LLM on a server that speaks the OpenAI chat API (llama.cpp, vLLM, Ollama). Off by default."""

    policy: str = "local"
    """local (nothing is ever sent: the default), remote (every question), or escalate (local first; long,
    multi-step or "ask the big model" questions go to the server)."""
    url: str | None = None
    """The server's OpenAI-compatible base URL, e.g. http://192.168.1.20:8080/v1."""
    model: str | None = None
    """Model name sent to the server (vLLM and Ollama need one; llama.cpp's servers ignore it)."""
    api_key: str | None = None
    """Sent as a Bearer token when set (never logged)."""
    first_token_timeout_s: float = 3.0
    """No first token within this (from the request) means the local model answers instead."""
    stall_timeout_s: float = 2.0
    """No new token within this, once the answer has started, counts as the server lost."""
    filler_after_s: float = 1.0
    """Say the filler when the server's first token is this late (0: never)."""
    filler: str = "One moment."
    """What the wearer hears while waiting for a late server."""
    max_tokens: int = 120
    """Longest reply asked of the server."""
    escalate_words: int = 25
    """escalate: a question of more words than this goes to the server."""
    vision: bool = False
    """Let the server phrase what the camera saw (only the detector's text is sent, never a frame)."""

    def __post_init__(self) -> None:
        _check(self.policy in ("local", "remote", "escalate"), "--remote-policy",
               "must be local, remote or escalate", self.policy)
        _check(self.policy == "local" or bool(self.url), "--remote-url",
               f"is needed for --remote-policy {self.policy}", self.url)
        if self.url is not None:
            _check(self.url.startswith(("http://", "https://")), "--remote-url",
                   "must start with http:// or https://", self.url)
        _check(0.1 <= self.first_token_timeout_s <= 120.0, "--remote-first-token-timeout-s", "must be 0.1..120",
               self.first_token_timeout_s)
        _check(0.1 <= self.stall_timeout_s <= 120.0, "--remote-stall-timeout-s", "must be 0.1..120",
               self.stall_timeout_s)
        _check(0.0 <= self.filler_after_s <= 60.0, "--remote-filler-after-s", "must be 0..60", self.filler_after_s)
        _check(8 <= self.max_tokens <= 4096, "--remote-max-tokens", "must be 8..4096", self.max_tokens)
        _check(1 <= self.escalate_words <= 1000, "--remote-escalate-words", "must be 1..1000", self.escalate_words)


def data_home() -> Path:
    """$XDG_DATA_HOME/glasses-assistant (default ~/.local/share/glasses-assistant)."""
    import os

    return Path(os.environ.get("XDG_DATA_HOME") or "~/.local/share").expanduser() / "glasses-assistant"


def config_home() -> Path:
    """$XDG_CONFIG_HOME/glasses-assistant (default ~/.config/glasses-assistant)."""
    import os

    return Path(os.environ.get("XDG_CONFIG_HOME") or "~/.config").expanduser() / "glasses-assistant"


SYSTEM_CONFIG = Path("/etc/glasses-assistant/config.toml")


def default_config_path() -> Path | None:
    """The config file used without ``--config``: the first that exists of
    /etc/glasses-assistant/config.toml (the device's, written by the operator) and
    $XDG_CONFIG_HOME/glasses-assistant/config.toml (a user's); None: built-in defaults."""
    for p in (SYSTEM_CONFIG, config_home() / "config.toml"):
        if p.is_file():
            return p
    return None


@dataclass(frozen=True)
class MemoryConfig:
    """Personal memory and timers, in one SQLite file on the device."""

    enabled: bool = True
    """Remember, recall, the turn log and timers (off: none of them is available)."""
    path: str = ""
    """The SQLite file (WAL mode); empty: $XDG_DATA_HOME/glasses-assistant/memory.db (~/.local/share/...)."""
    recall_k: int = 3
    """Memories placed in the prompt for a question that matches them."""
    log_turns: bool = True
    """Keep a searchable text log of questions and replies (never audio)."""

    def __post_init__(self) -> None:
        _check(0 <= self.recall_k <= 20, "--memory-recall-k", "must be 0..20", self.recall_k)

    @property
    def file(self) -> Path:
        return Path(self.path).expanduser() if self.path else data_home() / "memory.db"


@dataclass(frozen=True)
class PersonaConfig:
    """Who the assistant is: a persona file (TOML) with prompt, style, voice and allowed tools."""

    name: str = "default"
    """The persona to start with (a file NAME.toml in dir or the shipped personas, or a path)."""
    dir: str = ""
    """The wearer's own persona files (they override shipped ones of the same name); empty:
    $XDG_CONFIG_HOME/glasses-assistant/personas (~/.config/...)."""

    @property
    def folder(self) -> Path:
        return Path(self.dir).expanduser() if self.dir else config_home() / "personas"


@dataclass(frozen=True)
class ToolsConfig:
    """Acting on an intent: timers, memory, photo, volume, persona, status..."""

    enabled: bool = True
    """Look for tool intents in each question (a cheap word test first; the LLM only when it matches)."""
    grammar: bool = True
    """Constrain the tool call to valid JSON with llama.cpp's grammar (off: free generation, parsed)."""
TRANSLATE_LANGUAGES = "en,fr,es,de,it,pt,nl"


@dataclass(frozen=True)
class TranslateConfig:
    """Live translation: conversations ("translate for me") and signs ("translate this")."""

    engine: str = "llm"
    """llm (a local GGUF: [translate] model), whisper (Whisper's own speech-to-English; speech in, English
    out only: typed text and signs still use the LLM), or remote (the [remote] server's model)."""
    model: str = "qwen2.5-coder-1.5b-q4_k_m"
    """Catalogue id or path of the GGUF that translates, or "chat" for the chat LLM ([llm] model: the
    bundled 135M translates badly). Loaded on first use, beside the chat LLM."""
    stt_model: str = "whisper-base"
    """The multilingual Whisper used while translating (loaded on first use, beside [stt] model)."""
    wearer_language: str = "en"
    """The wearer's language: what the partner's speech is translated into."""
    partner_language: str | None = None
    """The partner's language; None detects it turn by turn ("translate from Spanish" fixes it)."""
    languages: str = TRANSLATE_LANGUAGES
    """Languages translated (comma-separated codes); speech detected in another gets a short honest answer."""
    voices: str = ""
    """Voice per language, "fr=espeak-ng:fr,de=/path/de_DE-voice.onnx" (a TOML table works too); a language
    not named is spoken by piper-tts's espeak-ng voice, and the wearer's language by [tts] voice."""
    captions: bool = True
    """Print the transcript and its translation as captions (and send them to glasses with a display)."""
    min_language_prob: float = 0.5
    """Whisper's language detection below this is "I didn't catch which language that was"."""
    max_tokens: int = 96
    """Longest translation in tokens (a spoken sentence is short)."""
    context: int = 1024
    """Context window of the translating GGUF."""
    threads: int = 2
    """CPU threads of the translating GGUF."""

    def __post_init__(self) -> None:
        _check(self.engine in ("llm", "whisper", "remote"), "--translate-engine", "must be llm, whisper or remote",
               self.engine)
        _check(bool(self.model.strip()), "--translate-model", "must not be empty", self.model)
        codes = [c.strip() for c in self.languages.split(",") if c.strip()]
        _check(bool(codes) and all(c.isalpha() and 2 <= len(c) <= 3 for c in codes), "--translate-languages",
               "must be comma-separated 2- or 3-letter codes", self.languages)
        for name in ("wearer_language", "partner_language"):
            value = getattr(self, name)
            if value is not None:
                _check(value in codes, f"--translate-{name.replace('_', '-')}",
                       f"must be one of the translated languages ({self.languages})", value)
        for item in (v for v in self.voices.split(",") if v.strip()):
            lang, sep, spec = item.partition("=")
            _check(bool(sep) and lang.strip().isalpha() and bool(spec.strip()), "--translate-voices",
                   'must be "LANG=VOICE,..." (e.g. "fr=espeak-ng:fr")', self.voices)
        _check(0.0 <= self.min_language_prob < 1.0, "--translate-min-language-prob", "must be 0..1",
               self.min_language_prob)
        _check(8 <= self.max_tokens <= 1024, "--translate-max-tokens", "must be 8..1024", self.max_tokens)
        _check(256 <= self.context <= 32768, "--translate-context", "must be 256..32768", self.context)
        _check(1 <= self.threads <= 64, "--translate-threads", "must be 1..64", self.threads)

    @property
    def language_list(self) -> tuple[str, ...]:
        return tuple(c.strip().lower() for c in self.languages.split(",") if c.strip())

    @property
    def voice_map(self) -> dict[str, str]:
        """``voices`` as {language: voice spec}."""
        out = {}
        for item in (v for v in self.voices.split(",") if v.strip()):
            lang, _, spec = item.partition("=")
            out[lang.strip().lower()] = spec.strip()
        return out


STAGES: dict[str, type] = {
    "mic": MicConfig,
    "vad": VadConfig,
    "stt": SttConfig,
    "llm": LlmConfig,
    "tts": TtsConfig,
    "vision": VisionConfig,
    "listen": ListenConfig,
    "bargein": BargeInConfig,
    "remote": RemoteConfig,
    "memory": MemoryConfig,
    "persona": PersonaConfig,
    "tools": ToolsConfig,
    "translate": TranslateConfig,
}


@dataclass(frozen=True)
class Config:
    """All the settings of one assistant."""

    mic: MicConfig = field(default_factory=MicConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    stt: SttConfig = field(default_factory=SttConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    listen: ListenConfig = field(default_factory=ListenConfig)
    bargein: BargeInConfig = field(default_factory=BargeInConfig)
    remote: RemoteConfig = field(default_factory=RemoteConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    persona: PersonaConfig = field(default_factory=PersonaConfig)
    tools: ToolsConfig = field(default_factory=ToolsConfig)
    translate: TranslateConfig = field(default_factory=TranslateConfig)
    models_dir: str | None = None
    """Model cache folder (default ~/.cache/glasses-assistant/models)."""


def _field_type(cls: type, name: str) -> Any:
    hints = typing.get_type_hints(cls)
    tp = hints[name]
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def _optional(cls: type, name: str) -> bool:
    tp = typing.get_type_hints(cls)[name]
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def _convert(cls: type, name: str, value: Any, where: str) -> Any:
    """``value`` (from TOML, or a flag's text) as the field's type; ConfigError names what is wrong.

    Strict about types, since a TOML file is written by hand (and fuzzed by the tests): a list
    is not a bool, a 400-digit number is not a float, NaN is not a threshold, and a NUL
    character (which no file name or model id can hold) is refused in every text setting.
    """
    tp = _field_type(cls, name)
    if value is None:  # a flag's "none": only where the setting may be unset (a model id, a path)
        if _optional(cls, name):
            return None
        raise ConfigError(f"{where} must be {tp.__name__}, not none")
    if isinstance(value, dict) and tp is str:  # a TOML table for a "k=v,k=v" setting ([translate] voices)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ConfigError(f"{where} must be a table of text values (got {shown(value)})")
        value = ",".join(f"{k}={v}" for k, v in value.items())
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
                return bool(value)
            raise ValueError(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(value)
            return int(value)
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(value)
            number = float(value)
            if not math.isfinite(number):
                raise ConfigError(f"{where} must be a finite number (got {shown(value)})")
            return number
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(value)
        text = str(value)
        if "\x00" in text:
            raise ConfigError(f"{where} must not contain a NUL character (got {shown(value)})")
        return text
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where} must be {tp.__name__} (got {shown(value)})") from None


def _build_stage(stage: str, values: dict[str, Any], where: str) -> Any:
    cls = STAGES[stage]
    known = {f.name for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"{where}: [{stage}] has no setting {key!r} (known: {', '.join(sorted(known))})"
            )
        kwargs[key] = _convert(cls, key, value, f"{where}: [{stage}] {key}")
    return cls(**kwargs)


def _read_file(path: Path | None) -> dict[str, Any]:
    return {} if path is None else read_toml(Path(path), "config file", ConfigError)


def load_config(path: Path | None = None, overrides: dict[str, dict[str, Any]] | None = None) -> Config:
    """Read a TOML file (if given) and apply flag overrides on top; validate everything."""
    data = _read_file(path)
    where = "config" if path is None else str(path)
    top: dict[str, Any] = {}
    for key, value in data.items():
        if key in STAGES:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: [{key}] must be a table")
        elif key == "models_dir":
            if not isinstance(value, str) or "\x00" in value:
                raise ConfigError(f"{where}: models_dir must be a folder name (got {shown(value)})")
            top[key] = value
        else:
            raise ConfigError(
                f"{where}: unknown setting {key!r} (known: {', '.join([*STAGES, 'models_dir'])})"
            )
    stages: dict[str, Any] = {}
    for stage in STAGES:
        merged = dict(data.get(stage, {}))
        for key, value in (overrides or {}).get(stage, {}).items():
            merged[key] = value
        stages[stage] = _build_stage(stage, merged, where)
    models_dir = (overrides or {}).get("", {}).get("models_dir", top.get("models_dir"))
    return Config(**stages, models_dir=models_dir)


def read_toml(path: Path, what: str, error: type[Exception]) -> dict[str, Any]:
    """Parse the TOML file ``path``, turning every way it can be bad into one-line ``error``.

    Not a regular file (``/dev/zero``, a FIFO), over 1 MiB, not UTF-8 (or UTF-16), not TOML,
    or nested so deeply that the parser runs out of stack: each is a sentence naming the file.
    """
    try:
        text = decode_text(read_limited(path, MAX_CONFIG_BYTES))
        return tomllib.loads(text)
    except OSError as err:
        raise error(f"cannot read {what} {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise error(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    except tomllib.TOMLDecodeError as err:
        raise error(f"{path}: not valid TOML: {err}") from None
    except RecursionError:
        raise error(f"{path}: not valid TOML: values nested too deeply") from None


def add_stage_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--<stage>-<field>`` flags for every stage field, grouped by stage."""
    for stage, cls in STAGES.items():
        group = parser.add_argument_group(f"{stage} settings ([{stage}] in the config file)")
        for f in fields(cls):
            flag = f"--{stage}-{f.name.replace('_', '-')}"
            doc = _field_docs(cls).get(f.name, "")
            default = f.default if f.default is not dataclasses.MISSING else None
            group.add_argument(
                flag, dest=f"{stage}__{f.name}", default=None, metavar=_field_type(cls, f.name).__name__.upper(),
                help=f"{doc} (default: {default!r})" if not isinstance(default, str) or len(default) < 40
                else f"{doc}",
            )


def overrides_from_args(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Collect the stage flags the user actually gave, as ``{stage: {field: text}}``."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in vars(args).items():
        if "__" in key and value is not None:
            stage, name = key.split("__", 1)
            if stage in STAGES:
                out.setdefault(stage, {})[name] = None if value == "none" else value
    return out


_DOC_CACHE: dict[type, dict[str, str]] = {}


def _field_docs(cls: type) -> dict[str, str]:
    """Field docstrings (the string literal under each field) for --help."""
    if cls in _DOC_CACHE:
        return _DOC_CACHE[cls]
    import ast
    import inspect

    docs: dict[str, str] = {}
    try:
        tree = ast.parse(inspect.getsource(cls))
    except (OSError, TypeError):  # pragma: no cover - no source (zipapp)
        return docs
    class_def = tree.body[0]
    assert isinstance(class_def, ast.ClassDef)  # getsource() of a class is its class statement
    for node, nxt in itertools.pairwise(class_def.body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                docs[node.target.id] = str(nxt.value.value).strip()
    _DOC_CACHE[cls] = docs
    return docs


def with_overrides(config: Config, **stages: dict[str, Any]) -> Config:
    """A copy of ``config`` with some stage fields changed (used by tests and bench)."""
    changes = {name: replace(getattr(config, name), **vals) for name, vals in stages.items()}
    return replace(config, **changes)


def config_sources(path: Path | None, overrides: dict[str, dict[str, Any]] | None) -> dict[str, str]:
    """Where each setting of :func:`load_config` came from: ``default``, ``file PATH`` or ``flag --NAME``.

    Keys are ``stage.field`` and ``models_dir``; a flag wins over the file, as in load_config.
    """
    data = _read_file(path)
    overrides = overrides or {}
    out: dict[str, str] = {}
    for stage, cls in STAGES.items():
        for f in fields(cls):
            if f.name in overrides.get(stage, {}):
                out[f"{stage}.{f.name}"] = f"flag --{stage}-{f.name.replace('_', '-')}"
            elif isinstance(data.get(stage), dict) and f.name in data[stage]:
                out[f"{stage}.{f.name}"] = f"file {path}"
            else:
                out[f"{stage}.{f.name}"] = "default"
    if "models_dir" in overrides.get("", {}):
        out["models_dir"] = "flag --models-dir"
    elif "models_dir" in data:
        out["models_dir"] = f"file {path}"
    else:
        out["models_dir"] = "default"
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    import json

    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def format_config(config: Config, sources: dict[str, str], *, models_dir: tuple[str, str] | None = None) -> str:
    """The effective settings as TOML, each line followed by where it came from.

    The text loads back as a config file (``config show > my.toml``): a setting with no value
    (None: "use the default model", "the system's device") is a comment, since TOML has no null.
    ``models_dir`` is the resolved cache folder and its source, when the caller knows them.
    """
    width = 44
    lines = ["# glasses-assistant's effective settings; after each, where it comes from:",
             "# default, file PATH, flag --NAME, or env NAME. This text loads back with --config."]

    def row(key: str, value: Any, source: str) -> str:
        text = f"# {key} =" if value is None else f"{key} = {_toml_value(value)}"
        note = f"# {source}" + (" (not set)" if value is None else "")
        return f"{text:<{width}} {note}" if len(text) < width else f"{text}  {note}"

    if models_dir is not None:
        lines.append(row("models_dir", models_dir[0], models_dir[1]))
    else:
        lines.append(row("models_dir", config.models_dir, sources.get("models_dir", "default")))
    for stage in STAGES:
        lines.append(f"\n[{stage}]")
        section = getattr(config, stage)
        for f in fields(section):
            lines.append(row(f.name, getattr(section, f.name), sources.get(f"{stage}.{f.name}", "default")))
    return "\n".join(lines) + "\n"
