# SPDX-License-Identifier: GPL-3.0-or-later
"""CLI for the personal side: ``memory``, ``persona``, ``timers`` and ``tools`` commands."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from .config import Config
from .errors import AssistantError, ConfigError


def add_personal_parsers(sub: Any, add_common: Any, add_stage_flags: Any) -> None:
    mem = sub.add_parser("memory", help="personal memory: list | search Q | export [FILE] | delete ID | forget-all")
    msub = mem.add_subparsers(dest="memory_command", metavar="ACTION", required=True)
    msub.add_parser("list", help="every memory, newest first")
    ms = msub.add_parser("search", help="the memories a question recalls (the same retrieval as by voice)")
    ms.add_argument("query")
    ms.add_argument("-k", type=int, default=5, help="at most K results (default 5)")
    me = msub.add_parser("export", help="memories, turn log and timers as JSON (to FILE or stdout)")
    me.add_argument("file", nargs="?", type=Path)
    md = msub.add_parser("delete", help="delete one memory by id")
    md.add_argument("id", type=int)
    mf = msub.add_parser("forget-all", help="delete every memory (the turn log and timers stay)")
    mf.add_argument("--yes", action="store_true", help="do not ask")
    msub.add_parser("check", help="integrity check of the database")

    per = sub.add_parser("persona", help="personas: list | show NAME | check FILE")
    psub = per.add_subparsers(dest="persona_command", metavar="ACTION", required=True)
    psub.add_parser("list", help="shipped personas and the wearer's own ([persona] dir)")
    pshow = psub.add_parser("show", help="a persona's prompt, voice and tools")
    pshow.add_argument("name")
    pcheck = psub.add_parser("check", help="validate a persona file (exit 2 with a one-line error)")
    pcheck.add_argument("file", type=Path)

    tim = sub.add_parser("timers", help="timers and reminders: list | cancel ID")
    tsub = tim.add_subparsers(dest="timers_command", metavar="ACTION", required=True)
    tl = tsub.add_parser("list", help="pending timers and reminders")
    tl.add_argument("--all", action="store_true", help="also done and cancelled ones")
    tc = tsub.add_parser("cancel", help="cancel one by id")
    tc.add_argument("id", type=int)

    tools = sub.add_parser("tools", help="tools the assistant can call: list | bench")
    tsub2 = tools.add_subparsers(dest="tools_command", metavar="ACTION", required=True)
    tsub2.add_parser("list", help="the tools, their arguments, and which the current persona allows")
    tb = tsub2.add_parser("bench", help="tool-call validity over spoken intents, with and without the grammar")
    tb.add_argument("--json", type=Path, default=Path("out/tools-bench.json"), help="report (default %(default)s)")
    tb.add_argument("--text", action="store_true", help="skip speech: the intents' text goes straight in")

    for group in (msub, psub, tsub, tsub2):  # the flags go after the action: `memory list --memory-path X`
        for p in group.choices.values():
            add_common(p)
            add_stage_flags(p)


def _store(config: Config):
    from .memory import MemoryStore

    if not config.memory.enabled:
        raise ConfigError("memory is off ([memory] enabled = false)")
    store = MemoryStore(config.memory.file)
    if store.notice:
        print(store.notice, file=sys.stderr)
    return store


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def cmd_memory(args: argparse.Namespace, config: Config) -> int:
    store = _store(config)
    try:
        action = args.memory_command
        if action == "list":
            items = store.memories()
            for m in items:
                print(f"{m.id:>5}  {_when(m.created)}  {m.kind:<10}  {m.text}")
            print(f"{len(items)} memories in {store.path}")
        elif action == "search":
            for m in store.recall(args.query, args.k):
                print(f"{m.id:>5}  {_when(m.created)}  {m.text}")
        elif action == "export":
            text = store.export_json()
            if args.file is None:
                print(text)
            else:
                args.file.parent.mkdir(parents=True, exist_ok=True)
                args.file.write_text(text + "\n", encoding="utf-8")
                print(f"exported {len(store.memories())} memories to {args.file}")
        elif action == "delete":
            gone = store.delete(args.id)
            if gone is None:
                print(f"no memory with id {args.id}", file=sys.stderr)
                return 1
            print(f"deleted {gone.id}: {gone.text}")
        elif action == "forget-all":
            if not args.yes and (not sys.stdin.isatty() or input("forget every memory? [y/N] ").lower() != "y"):
                print("nothing deleted (use --yes)", file=sys.stderr)
                return 1
            print(f"forgot {store.forget_all()} memories")
        elif action == "check":
            result = store.integrity()
            print(f"{store.path}: integrity {result}")
            return 0 if result == "ok" else 1
        return 0
    finally:
        store.close()


def cmd_persona(args: argparse.Namespace, config: Config) -> int:
    from .persona import find_persona, load_persona, persona_files
    from .tools import TOOLS

    if args.persona_command == "list":
        for name, path in persona_files(config.persona.folder).items():
            try:
                p = load_persona(path, set(TOOLS))
                mark = "*" if name == config.persona.name else " "
                print(f"{mark} {name:<12} voice {p.voice or '[tts]':<16} {path}")
            except AssistantError as err:
                print(f"! {name:<12} {err}")
        return 0
    if args.persona_command == "show":
        print(find_persona(args.name, config.persona.folder, set(TOOLS)).describe())
        return 0
    p = load_persona(args.file, set(TOOLS))
    print(f"{args.file}: ok (persona {p.name!r})")
    return 0


def cmd_timers(args: argparse.Namespace, config: Config) -> int:
    store = _store(config)
    try:
        if args.timers_command == "list":
            items = store.timers(state=None if args.all else "pending")
            for t in items:
                print(f"{t.id:>5}  {t.kind:<8}  due {_when(t.due)}  {t.state:<9}  {t.label}")
            print(f"{len(items)} {'timers and reminders' if args.all else 'pending'}")
            return 0
        if store.set_timer_state(args.id, "cancelled"):
            print(f"cancelled {args.id}")
            return 0
        print(f"no pending timer with id {args.id}", file=sys.stderr)
        return 1
    finally:
        store.close()


def cmd_tools(args: argparse.Namespace, config: Config) -> int:
    from .persona import find_persona
    from .tools import TOOLS

    if args.tools_command == "list":
        persona = find_persona(config.persona.name, config.persona.folder, set(TOOLS))
        for spec in TOOLS.values():
            ok = "yes" if persona.allows(spec.name) else "no"
            print(f"{spec.name:<18} {ok:<4} {spec.description}; args: {', '.join(spec.args) or '-'}")
        print(f"(allowed column: persona {persona.name!r})")
        return 0
    from .benches.tools import run_tools_bench

    report = run_tools_bench(config, spoken=not args.text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"report: {args.json}")
    return 0
