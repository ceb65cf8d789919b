# SPDX-License-Identifier: GPL-3.0-or-later
"""Crash safety: a process writing memories and timers is SIGKILLed mid-stream, several times.

The writer prints an id only after its commit has returned. After each kill, every printed
memory and pending timer must be in the database, the pending timers must be armed again by a
new assistant, and SQLite's integrity check must say "ok".
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from glasses_assistant.config import load_config
from glasses_assistant.memory import MemoryStore

WRITER = r"""
import sys, time
from glasses_assistant.memory import MemoryStore
store = MemoryStore(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    i += 1
    m = store.remember(f"memory {i} from pid {sys.argv[2]}: " + "x" * (i % 300))
    print(f"m {m.id}", flush=True)
    t = store.add_timer("timer", f"timer {i}", time.time() + 3600 + i, 3600)
    print(f"t {t.id}", flush=True)
"""


def test_sigkill_mid_write_loses_nothing_committed(tmp_path: Path) -> None:
    db = tmp_path / "memory.db"
    rng = random.Random(7)
    memories: set[int] = set()
    timers: set[int] = set()
    for run in range(6):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(run)], stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))  # kill at a random point of the stream
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        for line in proc.stdout.read().splitlines():  # what it printed before it died
            kind, _, ident = line.partition(" ")
            (memories if kind == "m" else timers).add(int(ident))
        assert proc.returncode == -signal.SIGKILL
        store = MemoryStore(db)  # restart
        assert store.notice is None
        assert store.integrity() == "ok"
        have_m = {m.id for m in store.memories()}
        have_t = {t.id for t in store.timers()}
        assert memories <= have_m, sorted(memories - have_m)[:5]
        assert timers <= have_t, sorted(timers - have_t)[:5]
        store.close()
    assert len(memories) > 20 and len(timers) > 20  # it really was killed mid-stream, many writes in

    from glasses_assistant.pipeline import Assistant

    a = Assistant(load_config(overrides={"memory": {"path": str(db)}, "persona": {"dir": str(tmp_path)}}))
    pending = a.memory.timers()  # type: ignore[union-attr]
    assert a.next_due() == min(t.due for t in pending)  # re-armed: the watcher wakes for the first
    assert a.due_announcements(time.time(), started=time.time()) == []  # none due yet, none lost
    assert a.memory.recall("memory 1 from pid 0")  # type: ignore[union-attr]
    a.close()
