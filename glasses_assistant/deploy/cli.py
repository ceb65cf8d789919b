# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``glasses-assistant device`` subcommand.

Hooked into the main parser with two lines in ``glasses_assistant/cli.py``::

    from .deploy.cli import add_device_parser, cmd_device   # imports
    add_device_parser(sub); COMMANDS["device"] = cmd_device  # in build_parser / COMMANDS

Actions: keygen, bundle, init, push, status, rollback, logs, health (runs on the device),
firmware (update the glasses over the bridge), firmware-build (a signed test image).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from .errors import DeployError


def _add_ssh(p: argparse.ArgumentParser) -> None:
    p.add_argument("device", metavar="ssh://[USER@]HOST[:PORT][/ROOT]",
                   help="the device over SSH (ROOT: its install folder, default /opt/glasses-assistant)")
    p.add_argument("-o", "--ssh-option", action="append", default=[], metavar="OPT",
                   help="pass an option to ssh, e.g. -o IdentityFile=~/.ssh/board (repeatable)")
    p.add_argument("--agent-python", default="python3",
                   help="the device's interpreter for the agent (needs cryptography; default python3)")


def add_device_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``device`` and its actions to the main parser's subparsers object."""
    dev = subparsers.add_parser(
        "device", help="flash devices: keygen | bundle | init | push | status | rollback | logs | firmware",
        description="Build signed bundles, push them over SSH into A/B slots with a health check and "
        "rollback, and update the glasses' firmware over the bridge. See docs/flashing.md.",
    )
    sub = dev.add_subparsers(dest="device_command", metavar="ACTION", required=True)

    kg = sub.add_parser("keygen", help="make an Ed25519 signing key: NAME.key (private) and NAME.pub")
    kg.add_argument("name", type=Path, help="path without extension, e.g. keys/release")
    kg.add_argument("--force", action="store_true", help="overwrite an existing key")

    b = sub.add_parser("bundle", help="build a signed bundle (app wheel, wheelhouse, models, config, unit)")
    b.add_argument("-o", "--out", type=Path, required=True, help="new bundle folder")
    b.add_argument("--key", type=Path, required=True, help="private signing key (NAME.key)")
    b.add_argument("--target", default=None, help="linux-aarch64 or linux-x86_64 (default: this machine)")
    b.add_argument("--compatible", required=True,
                   help="compatible-device string the device must have, e.g. jetson-orin-nano/glasses-v1")
    b.add_argument("--version", dest="bundle_version", help="version shown on the device (default: the app's)")
    b.add_argument("--counter", type=int, help="monotonic counter; devices refuse lower ones (default: now, s)")
    b.add_argument("--model", action="append", dest="models", metavar="ID",
                   help="model ids to carry (repeatable; default: the default model of each role)")
    b.add_argument("--models-dir", type=Path, help="model cache folder")
    b.add_argument("--config", type=Path, help="TOML config for the device")
    b.add_argument("--app-wheel", type=Path, help="use this wheel instead of building one from the source tree")
    b.add_argument("--device-wheel", action="append", type=Path, default=None, metavar="WHL",
                   help="carry this prebuilt wheel (e.g. llama-cpp-python for aarch64) instead of the one "
                   "`device wheel` builds; repeatable")
    b.add_argument("--no-device-wheel", action="store_true",
                   help="do not cross-build llama-cpp-python: the device compiles it (needs its package index)")
    b.add_argument("--no-lock", action="store_true",
                   help="resolve the wheelhouse afresh instead of from the committed per-target lock")
    b.add_argument("--lock", type=Path, help="use this lock file instead of the committed one")

    w = sub.add_parser("wheel", help="cross-build llama-cpp-python for a device (cached; see docs/flashing.md)")
    w.add_argument("--target", default="linux-aarch64", help="linux-aarch64 (the only cross target)")
    w.add_argument("--force", action="store_true", help="rebuild even when a checked wheel is cached")
    w.add_argument("--jobs", type=int, help="parallel compile jobs (default: all cores)")
    w.add_argument("--sdist", type=Path, help="build from this llama-cpp-python sdist instead of the registry's")
    w.add_argument("--check", type=Path, metavar="WHL", help="only check a wheel: ELF machine and glibc")

    lk = sub.add_parser("lock", help="regenerate the per-target locks of the wheelhouse (commit the result)")
    lk.add_argument("--target", action="append", metavar="NAME",
                    help="lock name (default: all): jetpack6-aarch64-py3.10, bookworm-aarch64-py3.11, x86_64-py3.11")
    b.add_argument("--python-version", help="the device's Python, e.g. 3.10 (default: this one)")
    b.add_argument("--no-wheelhouse", action="store_true", help="carry no dependency wheels")
    b.add_argument("--device-root", default="/opt/glasses-assistant", help="install folder on the device")

    i = sub.add_parser("init", help="prepare a device: install the agent, trust a public key, set its identity")
    _add_ssh(i)
    i.add_argument("--trust", type=Path, action="append", required=True, metavar="NAME.pub",
                   help="public key whose bundles the device accepts (repeatable)")
    i.add_argument("--compatible", required=True, help="this device's compatible-device string")
    i.add_argument("--python", help="run slots with this interpreter instead of a venv per slot (dev boards)")
    i.add_argument("--health-level", choices=("full", "import"), help="health check depth (default full)")
    i.add_argument("--health-timeout", type=float, help="seconds the health check may take (default 180)")
    i.add_argument("--bridge", metavar="URL", help="glasses bridge URL the health check handshakes with")
    i.add_argument("--systemd", choices=("auto", "on", "off"), help="use systemd for the service (default auto)")

    p = sub.add_parser("push", help="send a bundle (only what is missing), install, switch, health-check")
    _add_ssh(p)
    p.add_argument("bundle", type=Path, help="bundle folder from `device bundle`")
    p.add_argument("--force", action="store_true", help="allow a downgrade (lower counter) or reinstall")
    p.add_argument("--health-timeout", type=float, help="seconds for the health check (default: the device's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    for name, text in (("status", "slots, versions and which one boots"),
                       ("rollback", "boot the previous slot again")):
        s = sub.add_parser(name, help=text)
        _add_ssh(s)
        s.add_argument("--json", action="store_true", help="as JSON")
        if name == "rollback":
            s.add_argument("--force", action="store_true", help="even to a slot that failed its health check")
    lg = sub.add_parser("logs", help="the agent's log, the last health check, the service journal")
    _add_ssh(lg)
    lg.add_argument("-n", "--lines", type=int, default=40)

    h = sub.add_parser("health", help="(on the device) check an installed slot: models, spoken answer, bridge")
    from .health import add_arguments

    add_arguments(h)

    fw = sub.add_parser("firmware", help="update the glasses' firmware over the bridge (signed image)")
    fw.add_argument("image", type=Path, help="signed firmware image (from firmware-build or the vendor)")
    fw.add_argument("--glasses", required=True, metavar="URL", help="bridge URL, e.g. tcp://127.0.0.1:7000")
    fw.add_argument("--trust", type=Path, action="append", default=[], metavar="NAME.pub",
                    help="check the image against this key before sending (the glasses check it too)")
    fw.add_argument("--force", action="store_true", help="allow a downgrade (lower counter)")
    fw.add_argument("--timeout", type=float, default=120.0, help="seconds for the whole update")

    fb = sub.add_parser("firmware-build", help="make a signed firmware image (test images for the virtual glasses)")
    fb.add_argument("-o", "--out", type=Path, required=True)
    fb.add_argument("--key", type=Path, required=True, help="private signing key (NAME.key)")
    fb.add_argument("--version", dest="fw_version", required=True, help="firmware version string")
    fb.add_argument("--device-model", default="glasses-sim", help="device model the image is for")
    fb.add_argument("--counter", type=int, default=1, help="monotonic counter (the glasses refuse lower)")
    fb.add_argument("--payload", type=Path, help="firmware body (default: SIZE pseudo-random bytes)")
    fb.add_argument("--size", type=int, default=256 * 1024, help="body size without --payload (bytes)")
    fb.add_argument("--fail-first-heartbeat", action="store_true",
                    help="test image: the virtual glasses crash before its first heartbeat (rollback test)")
    return dev


def _target(args: argparse.Namespace):
    from .ssh import SshTarget

    opts: list[str] = []
    for o in args.ssh_option:
        opts += ["-o", o]
    return SshTarget.parse(args.device, options=opts, agent_python=args.agent_python)


def cmd_device(args: argparse.Namespace) -> int:
    """Run a ``device`` action; errors are AssistantError subclasses (one line, exit 2)."""
    return _ACTIONS[args.device_command](args)


def _keygen(args: argparse.Namespace) -> int:
    from .keys import generate, load_signing_key

    key, pub = generate(args.name, overwrite=args.force)
    print(f"private key: {key} (keep it secret)\npublic key:  {pub} (key id {load_signing_key(key).key_id})")
    return 0


def _bundle(args: argparse.Namespace) -> int:
    from .bundle import build_bundle, host_target, human
    from .keys import load_signing_key

    key = load_signing_key(args.key)
    b = build_bundle(args.out, key, target=args.target or host_target(), compatible=args.compatible,
                     version=args.bundle_version, counter=args.counter, models=args.models,
                     models_dir=args.models_dir, config=args.config, app_wheel=args.app_wheel,
                     device_wheels=args.device_wheel, wheelhouse=not args.no_wheelhouse,
                     python_version=args.python_version, device_root=args.device_root,
                     use_lock=not args.no_lock, lock=args.lock, cross_wheel=not args.no_device_wheel)
    m = b.manifest
    print(f"bundle {args.out}: {m['version']} (counter {m['counter']}) for {m['compatible']} "
          f"[{m['target']['platform']}], {len(m['files'])} files, {human(b.size)}, signed by key {key.key_id}")
    for item in m["build_on_device"]:
        print(f"  note: {item['requirement']} has no wheel for {m['target']['platform']}: "
              "it compiles on the device (or pass --device-wheel)")
    return 0


def _wheel(args: argparse.Namespace) -> int:
    from .crosswheel import build_device_wheel, check_wheel

    if args.check:
        c = check_wheel(args.check, args.target)
        print(f"{args.check.name}: {len(c.libraries)} {args.target} libraries, needs glibc "
              f"{c.glibc[0]}.{c.glibc[1]}{f', GLIBCXX {c.glibcxx}' if c.glibcxx else ''}")
        return 0
    wheel = build_device_wheel(args.target, force=args.force, jobs=args.jobs, sdist=args.sdist,
                               progress=lambda m: print(m, flush=True))
    print(wheel)
    return 0


def _lock(args: argparse.Namespace) -> int:
    from importlib import metadata

    from .locks import LOCK_TARGETS, resolve, write_lock

    names = args.target or [t.name for t in LOCK_TARGETS]
    unknown = sorted(set(names) - {t.name for t in LOCK_TARGETS})
    if unknown:
        raise DeployError(f"unknown lock {unknown[0]!r} (known: {', '.join(t.name for t in LOCK_TARGETS)})")
    reqs = [r for r in metadata.requires("glasses-assistant") or [] if "extra ==" not in r]
    for t in LOCK_TARGETS:
        if t.name in names:
            pins = resolve(t, reqs, progress=lambda m: print(m, flush=True))
            print(f"{write_lock(t, reqs, pins)}: {len(pins)} pins")
    return 0


def _init(args: argparse.Namespace) -> int:
    t = _target(args)
    keys = []
    for p in args.trust:
        try:
            keys.append(p.read_text())
        except OSError as err:
            raise DeployError(f"cannot read {p}: {err.strerror}") from None
    t.install_agent()
    out = t.call("init", {"keys": keys, "device": {
        "compatible": args.compatible, "python": args.python, "health_level": args.health_level,
        "health_timeout_s": args.health_timeout, "bridge_url": args.bridge, "systemd": args.systemd}})
    print(f"{t.url}: ready; compatible {out['device']['compatible']!r}; trusts {', '.join(out['keys'])}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from .bundle import load_bundle
    from .push import push

    rep = push(_target(args), load_bundle(args.bundle), force=args.force, health_timeout=args.health_timeout,
               progress=False if args.no_progress else None)
    print(rep.summary())
    h = rep.health
    if h.get("reply"):
        print(f"health: heard {h.get('transcript')!r}, answered {h.get('reply')!r}")
    return 0


def _status(args: argparse.Namespace) -> int:
    info = _target(args).call("info")
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{args.device}: {info['device'].get('compatible')} ({info['machine']}, python {info['python']}, "
          f"systemd {'yes' if info['systemd'] else 'no'})")
    for s, d in info["slots"].items():
        mark = "current " if s == info["current"] else "previous" if s == info["previous"] else "        "
        desc = "empty" if d is None else (f"{d['version']} (counter {d['counter']}) {d['state']}"
                                          f"{'' if d['verifies'] else ' DOES NOT VERIFY'}")
        print(f"  {mark} slot {s}: {desc}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    out = _target(args).call("rollback", {"force": args.force})
    print(f"rolled back to slot {out['slot']} ({out['version']})")
    return 0


def _logs(args: argparse.Namespace) -> int:
    out = _target(args).call("logs", {"lines": args.lines})
    print("\n".join(out["agent"]))
    if out["health"]:
        print("--- last health check ---\n" + out["health"].rstrip())
    if out["journal"]:
        print("--- journal ---\n" + out["journal"].rstrip())
    return 0


def _health(args: argparse.Namespace) -> int:
    from .health import run_health

    result = run_health(args.slot.resolve(), args.level, args.bridge, args.answer_timeout)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


FIRMWARE_IMAGE_LIMIT = 256 << 20
"""Glasses firmware is a few MB; a bigger file (or /dev/zero) is not an image."""


def _firmware(args: argparse.Namespace) -> int:
    from firmware_bridge import BridgeError
    from firmware_bridge.firmware import parse_image, update_firmware

    from ..safefile import read_limited
    from .keys import load_public_key

    try:
        data = read_limited(args.image, FIRMWARE_IMAGE_LIMIT)
    except OSError as err:
        raise DeployError(f"cannot read {args.image}: {err.strerror}") from None
    if not args.timeout > 0:
        raise DeployError(f"--timeout must be a positive number of seconds (got {args.timeout})")
    try:
        img = parse_image(data, trusted=[load_public_key(p) for p in args.trust] or None)
        print(f"image {img.version} for {img.device_model} (counter {img.counter}, {len(data)} bytes)", flush=True)
        result = asyncio.run(update_firmware(args.glasses, data, force=args.force, timeout=args.timeout,
                                             progress=lambda m: print(m, flush=True)))
    except BridgeError as err:  # FirmwareError, and an unreachable or refusing link
        raise DeployError(str(err)) from None
    print(result.summary())
    return 0 if result.confirmed else 1


def _firmware_build(args: argparse.Namespace) -> int:
    import os

    from firmware_bridge.firmware import build_image

    from .keys import load_signing_key

    key = load_signing_key(args.key)
    body = args.payload.read_bytes() if args.payload else os.urandom(args.size)
    image = build_image(body, version=args.fw_version, device_model=args.device_model, counter=args.counter,
                        sign=key.sign, public_raw=key.public_raw, fail_first_heartbeat=args.fail_first_heartbeat)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(image)
    print(f"{args.out}: firmware {args.fw_version} for {args.device_model}, counter {args.counter}, "
          f"{len(image)} bytes, signed by key {key.key_id}")
    return 0


_ACTIONS = {"keygen": _keygen, "bundle": _bundle, "wheel": _wheel, "lock": _lock, "init": _init, "push": _push,
            "status": _status,
            "rollback": _rollback, "logs": _logs, "health": _health, "firmware": _firmware,
            "firmware-build": _firmware_build}


def main(argv: list[str] | None = None) -> int:
    """``python -m glasses_assistant.deploy.cli ACTION ...``: the same actions without the main CLI."""
    from ..errors import AssistantError

    parser = argparse.ArgumentParser(prog="glasses-assistant")
    add_device_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["device", *(sys.argv[1:] if argv is None else argv)])
    try:
        return cmd_device(args)
    except AssistantError as err:
        print(f"glasses-assistant: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
