# SPDX-License-Identifier: GPL-3.0-or-later
"""`glasses-assistant doctor`: what each stage will run on, here, with this config.

Every check is read-only and quick: no model is loaded, and nothing reaches the network
except a ``GET /models`` to the configured remote server (only when one is configured).
``--device URL`` also connects to those glasses (the bridge, Bluetooth for ``brilliant://``).
A check that cannot run (a library missing or broken) reports that instead of failing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .config import Config


@dataclass
class Check:
    """One row of the report."""

    stage: str
    what: str
    status: str
    """ok, warn (works, but not as configured or not at its best), fail, or off."""
    detail: str


def _guard(stage: str, what: str, fn: Callable[[], Check]) -> Check:
    try:
        return fn()
    except Exception as err:  # a broken optional library is a finding, not a crash
        return Check(stage, what, "fail", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")


def _llm(config: Config) -> Check:
    import llama_cpp

    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    layers = config.llm.gpu_layers
    if layers == 0:
        return Check("llm", "llama-cpp-python", "ok",
                     f"CPU, {config.llm.threads} threads (GPU offload {'available' if gpu else 'not built in'})")
    if gpu:
        return Check("llm", "llama-cpp-python", "ok", f"GPU: {'all' if layers < 0 else layers} layers offloaded")
    return Check("llm", "llama-cpp-python", "warn",
                 f"--llm-gpu-layers {layers} asked for, but this build has no GPU offload: CPU (docs/gpu.md)")


def _stt(config: Config) -> Check:
    import ctranslate2

    cuda = ctranslate2.get_cuda_device_count()
    device = config.stt.device
    if device == "cpu":
        return Check("stt", "CTranslate2", "ok", f"CPU {config.stt.compute_type} ({cuda} CUDA device(s) seen)")
    if cuda > 0:
        return Check("stt", "CTranslate2", "ok", f"CUDA ({cuda} device(s)), {config.stt.compute_type}")
    if device == "auto":
        return Check("stt", "CTranslate2", "ok", "auto: no CUDA device, so the CPU")
    return Check("stt", "CTranslate2", "fail", "--stt-device cuda, but CTranslate2 sees no CUDA device")


def _onnx(stage: str, what: str) -> Check:
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    # Piper and the detector create their sessions with the CPU provider whatever is installed.
    return Check(stage, what, "ok", f"CPU (providers installed: {', '.join(providers)})")


def _audio() -> Check:
    import sounddevice

    devices = sounddevice.query_devices()
    ins = sum(1 for d in devices if d["max_input_channels"] > 0)
    outs = sum(1 for d in devices if d["max_output_channels"] > 0)
    status = "ok" if ins and outs else "warn"
    return Check("audio", "sounddevice", status,
                 f"{ins} input and {outs} output device(s)" + ("" if status == "ok" else
                                                                 ": --mic needs both; WAV and --text work"))


def _remote(config: Config) -> Check:
    cfg = config.remote
    if cfg.policy == "local" or not cfg.url:
        return Check("remote", "server LLM", "off", "policy local: nothing is sent anywhere")
    from .engines.remote import RemoteError, RemoteLlm

    started = time.monotonic()
    try:
        models = RemoteLlm(cfg).models(timeout=min(cfg.first_token_timeout_s, 5.0))
    except RemoteError as err:
        return Check("remote", "server LLM", "fail",
                     f"policy {cfg.policy}, {err} (the local model will answer)")
    ms = (time.monotonic() - started) * 1000.0
    listed = ", ".join(Path(m).name for m in models[:3]) or "none listed"
    warn = cfg.model is not None and models and cfg.model not in models
    return Check("remote", "server LLM", "warn" if warn else "ok",
                 f"policy {cfg.policy}, {cfg.url} reachable in {ms:.0f} ms; models: {listed}"
                 + (f" (--remote-model {cfg.model} not among them)" if warn else ""))


def _models(config: Config) -> list[Check]:
    from .catalog import load_catalogue

    cat = load_catalogue(cache_dir=Path(config.models_dir).expanduser() if config.models_dir else None)
    wanted = {"vad": config.vad.model, "stt": config.stt.model, "llm": config.llm.wanted, "tts": config.tts.voice,
              "vision": config.vision.model, "turn": config.vad.turn_model}
    rows = []
    for role, name in wanted.items():
        if name is not None and name not in cat.models:
            ok = Path(name).expanduser().exists()
            rows.append(Check("models", role, "ok" if ok else "fail", f"{name} ({'found' if ok else 'missing'})"))
            continue
        entry = cat.get(name) if name is not None else cat.default_for(role)
        status = cat.status(entry)
        hint = "" if status == "ok" else " (run: glasses-assistant models fetch)"
        rows.append(Check("models", role, "ok" if status == "ok" else "fail", f"{entry.id}: {status}{hint}"))
    return rows


def _glasses(url: str) -> Check:
    """Connect to the glasses at ``url`` (bridge URL, brilliant://[NAME] or halo-emulator) and say what they are."""
    import asyncio

    from firmware_bridge import BridgeClient, BridgeError

    from .devices.brilliant import emulated_glasses, is_brilliant_url, open_client, parse_url

    brilliant = is_brilliant_url(url)
    emulated = emulated_glasses(url) if brilliant and parse_url(url).emulator else None

    async def probe() -> Check:
        client: Any = open_client(url, glasses=emulated) if brilliant else BridgeClient(url, reconnect=False)
        started = time.perf_counter()
        try:
            await client.start()
        except BridgeError as err:
            return Check("glasses", url, "fail", str(err))
        try:
            caps = client.capabilities
            has = [c for c in ("microphone", "speaker", "camera", "display", "buttons") if getattr(caps, f"has_{c}")]
            fmt = caps.audio_format
            return Check("glasses", url, "ok", f"{caps.device_id} (firmware {caps.firmware_version}) answered in "
                         f"{(time.perf_counter() - started) * 1000:.0f} ms; microphone {fmt.codec} "
                         f"{fmt.sample_rate // 1000} kHz; has {', '.join(has)}")
        finally:
            await client.close()

    try:
        return asyncio.run(probe())
    finally:
        if emulated is not None:
            emulated.close()


def run_checks(config: Config, device: str | None = None) -> list[Check]:
    """Every check, in pipeline order (and the glasses at ``device``, when one is named)."""
    checks = [
        _guard("llm", "llama-cpp-python", lambda: _llm(config)),
        _guard("stt", "CTranslate2", lambda: _stt(config)),
        _guard("tts", "onnxruntime (Piper)", lambda: _onnx("tts", "onnxruntime (Piper)")),
        _guard("vision", "onnxruntime (detector)", lambda: _onnx("vision", "onnxruntime (detector)")),
        _guard("audio", "sounddevice", _audio),
        _guard("remote", "server LLM", lambda: _remote(config)),
    ]
    try:
        checks += _models(config)
    except Exception as err:
        checks.append(Check("models", "cache", "fail", f"{type(err).__name__}: {err}"))
    if device:
        checks.append(_guard("glasses", device, lambda: _glasses(device)))
    return checks


def format_table(checks: list[Check]) -> str:
    """The report as an aligned table."""
    w_stage = max(len("stage"), *(len(c.stage) for c in checks))
    w_what = max(len("component"), *(len(c.what) for c in checks))
    lines = [f"{'stage':<{w_stage}}  {'component':<{w_what}}  {'status':<6}  detail"]
    lines += [f"{c.stage:<{w_stage}}  {c.what:<{w_what}}  {c.status:<6}  {c.detail}" for c in checks]
    return "\n".join(lines)


def to_json(checks: list[Check]) -> str:
    return json.dumps([asdict(c) for c in checks], indent=2)
