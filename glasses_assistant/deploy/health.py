# SPDX-License-Identifier: GPL-3.0-or-later
"""The health check of a freshly installed slot, run *on the device* with the slot's own code.

``python -m glasses_assistant.deploy.health --slot DIR [--level full|import] [--bridge URL]``
(also ``glasses-assistant device health``). It prints one JSON line and exits 0 only when:

* ``full`` (the default): every model loads from the slot's content-addressed model folder,
  the bundled spoken question (``assets/question.wav``) is answered through the real
  pipeline (VAD -> Whisper -> llama.cpp -> Piper, as ``glasses-assistant run`` does), and,
  when a bridge URL is configured, the glasses handshake over ``firmware_bridge``;
* ``import``: the slot's code imports and its model files match the signed manifest (for
  development devices whose bundles carry placeholder models).

A separate module with its own ``main`` (not only the CLI action) so that the agent can run
it in a slot whatever that slot's CLI looks like.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _question() -> Path:
    from importlib import resources

    return Path(str(resources.files("glasses_assistant").joinpath("assets").joinpath("question.wav")))


def check_models(slot: Path) -> int:
    """Every model file in the slot matches the signed manifest (size and sha256)."""
    from .agent import sha256_path

    m = json.loads((slot / "manifest.json").read_bytes())
    n = 0
    for f in m["files"]:
        if f.get("kind") != "model":
            continue
        p = slot / f["path"]
        if p.stat().st_size != f["size"] or sha256_path(p) != f["sha256"]:
            raise RuntimeError(f"model file {f['path']} does not match the manifest")
        n += 1
    return n


def full_check(slot: Path, bridge: str | None, answer_timeout: float) -> dict[str, Any]:
    from ..audio.io import WavSink, WavSource
    from ..config import load_config
    from ..pipeline import Assistant

    cfg_path = slot / "files" / "config" / "config.toml"
    config = load_config(cfg_path if cfg_path.is_file() else None, {"": {"models_dir": str(slot / "models")}})
    out: dict[str, Any] = {}
    if bridge:
        out["bridge"] = asyncio.run(_handshake(bridge))  # first: an unreachable device fails in seconds
    assistant = Assistant(config)
    try:
        # Each stage on stderr (the agent keeps it as the health log): a slow board shows where the time goes.
        out["load_s"] = assistant.load(progress=lambda m: print(m, file=sys.stderr, flush=True))
        out["models"] = dict(assistant.model_ids)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="ga-health-") as tmp:
            sink = WavSink(Path(tmp) / "reply.wav")
            source = WavSource([_question()], realtime=False)
            traces = asyncio.run(asyncio.wait_for(assistant.serve(source, sink, max_turns=1), answer_timeout))
            audio_s = len(sink.audio) / (sink.sample_rate or 22050)
        answered = [t for t in traces if t.outcome == "answered" and t.reply]
        if not answered:
            waited = time.perf_counter() - t0
            # wait_for on Python < 3.12 returns what a cancelled serve() gave back (no traces):
            # say it ran out of time, not that nothing was heard.
            why = (traces[0].error or traces[0].outcome if traces else
                   f"no answer within {answer_timeout:g} s" if waited >= answer_timeout - 1 else
                   "no turn was heard in the question")
            raise RuntimeError(f"the spoken test question was not answered: {why}")
        out.update(transcript=answered[0].transcript, reply=answered[0].reply, reply_audio_s=round(audio_s, 2),
                   answer_s=round(time.perf_counter() - t0, 2))
        if audio_s < 0.3:
            raise RuntimeError("the reply has no audio")
    finally:
        assistant.close()
    return out


async def _handshake(url: str) -> dict[str, Any]:
    from firmware_bridge import BridgeClient

    client = BridgeClient(url, connect_timeout=10.0, reconnect=False)
    try:
        await client.start()
        caps = client.capabilities
        assert caps is not None
        return {"device_id": caps.device_id, "firmware": caps.firmware_version,
                "protocol": list(caps.protocol_version)}
    finally:
        await client.close()


def run_health(slot: Path, level: str = "full", bridge: str | None = None, answer_timeout: float = 120.0) -> dict:
    """Run the check; never raises (the result says ``ok`` and, if not, ``error``)."""
    import glasses_assistant

    result: dict[str, Any] = {"level": level, "slot": str(slot), "code": str(Path(glasses_assistant.__file__).parent)}
    try:
        result["version"] = json.loads((slot / "manifest.json").read_bytes()).get("version")
        import glasses_assistant.pipeline  # noqa: F401  (the slot's code must import)

        result["model_files"] = check_models(slot)
        if level == "full":
            result.update(full_check(slot, bridge, answer_timeout))
        elif bridge:
            result["bridge"] = asyncio.run(_handshake(bridge))
        result["ok"] = True
    except Exception as err:  # noqa: BLE001 - every failure is a failed health check, reported in one line
        result["ok"] = False
        result["error"] = f"{type(err).__name__}: {' '.join(str(err).split())}"[:300]
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slot", type=Path, required=True, help="the installed slot folder to check")
    p.add_argument("--level", choices=("full", "import"), default="full",
                   help="full: load models, answer the spoken question; import: code imports, models match")
    p.add_argument("--bridge", metavar="URL", help="also handshake with the glasses at this bridge URL")
    p.add_argument("--answer-timeout", type=float, default=120.0, help="seconds to answer the question")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m glasses_assistant.deploy.health", description=__doc__.split("\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    result = run_health(args.slot.resolve(), args.level, args.bridge, args.answer_timeout)
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
