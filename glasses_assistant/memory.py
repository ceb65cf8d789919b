# SPDX-License-Identifier: GPL-3.0-or-later
"""Personal memory on the device: what the wearer asked to remember, facts, the turn log, timers.

One SQLite file (default ``~/.local/share/glasses-assistant/memory.db``):

* WAL mode with ``synchronous=FULL``: once a write's commit returns it is on disk, and a
  crash (even SIGKILL) mid-write loses at most the uncommitted write;
* ``busy_timeout``: another process holding the lock is waited for, then a clear error;
* a schema version in ``meta``;
* ``memories`` (text, kind remembered|fact, created, source turn) with an FTS5 index
  (porter stemmer) kept in the same transaction; ``turns`` (question and reply text only:
  audio is never stored here); ``timers`` (wall-clock due time, label, state).

Retrieval (:meth:`MemoryStore.recall`): the question's content words, each widened by a
small table of everyday synonyms ("park" -> car, parking, level...), OR-ed into an FTS5
query ranked by bm25; without FTS5 in the sqlite build the same words are matched with LIKE.

Bad storage never ends the assistant: a file that is not a database (or fails the integrity
check) is renamed aside (never deleted) and a fresh one started, with one line saying so;
a lock held too long or a full disk raise :class:`MemoryStoreError`, whose ``spoken`` is
what the wearer hears; what was committed before stays.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import AssistantError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_PATH = "~/.local/share/glasses-assistant/memory.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS memories (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'remembered' CHECK (kind IN ('remembered', 'fact')),
    created REAL NOT NULL,
    turn INTEGER
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    question TEXT NOT NULL,
    reply TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS timers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('timer', 'reminder')),
    label TEXT NOT NULL,
    due REAL NOT NULL,
    duration REAL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'cancelled')),
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS timers_pending ON timers (state, due);
"""

# Everyday words a question and the remembered sentence may not share ("where did I park?"
# / "my car is on level 3"). Each key widens to its values; stems are matched by FTS5's porter.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "park": ("car", "parking", "parked", "level", "garage", "floor"),
    "parked": ("car", "parking", "park", "level", "garage", "floor"),
    "parking": ("car", "park", "parked", "level", "garage"),
    "car": ("park", "parked", "parking", "vehicle"),
    "vehicle": ("car",),
    "key": ("keys",),
    "keys": ("key",),
    "met": ("meet", "name", "called"),
    "meet": ("met", "name", "called"),
    "name": ("called", "met", "meet"),
    "called": ("name",),
    "birthday": ("born", "birth"),
    "password": ("code", "pin"),
    "code": ("password", "pin"),
    "pin": ("code", "password"),
    "medicine": ("pill", "pills", "tablet", "medication"),
    "pill": ("medicine", "pills", "tablet"),
    "pills": ("medicine", "pill", "tablet"),
    "left": ("put", "placed"),
    "job": ("work", "works", "working"),
    "work": ("job", "works"),
    "put": ("left", "placed"),
}

STOPWORDS = frozenset(
    "a an the is are was were be been am i me my mine you your it its this that these those of on in at to "
    "for with and or but do did does what where when who whom which how why remember recall tell know "
    "please can could would will should there here have has had about again we us our they them their "
    "he she him her his hers say said told".split()
)


class MemoryStoreError(AssistantError):
    """The store could not do what was asked; ``spoken`` is the short sentence the wearer hears."""

    def __init__(self, message: str, spoken: str) -> None:
        super().__init__(message)
        self.spoken = spoken


@dataclass(frozen=True)
class Memory:
    id: int
    text: str
    kind: str
    created: float
    turn: int | None = None


@dataclass(frozen=True)
class Timer:
    id: int
    kind: str
    label: str
    due: float
    duration: float | None
    state: str
    created: float


def query_words(text: str) -> list[str]:
    """The content words of ``text`` (lower case, stopwords dropped), in order, without repeats."""
    out: list[str] = []
    for w in re.findall(r"[a-z0-9]+", text.lower()):
        if w not in STOPWORDS and w not in out and (len(w) > 1 or w.isdigit()):  # "anna's" -> anna, not s
            out.append(w)
    return out


def expand(words: list[str]) -> list[str]:
    """``words`` plus their everyday synonyms (see :data:`SYNONYMS`)."""
    out = list(words)
    for w in words:
        for s in SYNONYMS.get(w, ()):
            if s not in out:
                out.append(s)
    return out


class MemoryStore:
    """The memory database; safe to call from several threads (one connection, one lock)."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 2000) -> None:
        self.path = Path(path).expanduser() if str(path) != ":memory:" else Path(":memory:")
        self.busy_timeout_ms = busy_timeout_ms
        self.notice: str | None = None
        """One line saying the file was corrupt and was set aside (None when all was well)."""
        self._lock = threading.RLock()
        self.fts = True
        self._db = self._open()

    # ------------------------------------------------------------------ opening
    def _connect(self) -> sqlite3.Connection:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), timeout=self.busy_timeout_ms / 1000, check_same_thread=False,
                             isolation_level=None)
        db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        return db

    def _init(self, db: sqlite3.Connection) -> None:
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(self.path) != ":memory:" and mode.lower() != "wal":
            log.warning("memory: journal mode is %s, not WAL", mode)
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
        ok = db.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {ok}")
        db.executescript(_SCHEMA)
        try:
            db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5("
                       "text, content='memories', content_rowid='id', tokenize='porter unicode61')")
        except sqlite3.OperationalError as err:
            if "no such module" not in str(err):
                raise
            self.fts = False
            log.warning("memory: this sqlite has no FTS5; recall matches words with LIKE")
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            raise MemoryStoreError(
                f"memory database {self.path} has schema version {row[0]}, newer than this build's "
                f"{SCHEMA_VERSION}", "My memory was written by a newer version, so I can't use it.")

    def _open(self) -> sqlite3.Connection:
        try:
            db = self._connect()
            self._init(db)
            return db
        except sqlite3.DatabaseError as err:
            if isinstance(err, sqlite3.OperationalError) and _is_lock_or_full(err):
                raise self._error(err, "open") from None
            with_err = str(err)
        with _suppress():
            db.close()
        # Not a database, or damaged: keep the file for the wearer (never delete), start afresh.
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                src.rename(Path(f"{aside}{suffix}"))
        self.notice = (f"memory database {self.path} was unreadable ({with_err}); kept it as {aside.name} "
                       "and started a new one")
        log.warning("%s", self.notice)
        db = self._connect()
        self._init(db)
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def integrity(self) -> str:
        """``PRAGMA integrity_check``: "ok" or what is wrong."""
        with self._lock:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction; committed (on disk) when the block ends, rolled back on error."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                raise self._error(err, what) from None
            try:
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                with _suppress():
                    self._db.execute("ROLLBACK")
                raise self._error(err, what) from None
            except BaseException:
                with _suppress():
                    self._db.execute("ROLLBACK")
                raise

    def _error(self, err: sqlite3.Error, what: str) -> MemoryStoreError:
        text = str(err)
        if "locked" in text or "busy" in text:
            spoken = "I couldn't save that right now; my memory is busy."
        elif "full" in text:
            spoken = "I couldn't save that: the storage is full."
        else:
            spoken = "I couldn't save that; my memory has a problem."
        return MemoryStoreError(f"memory {what} failed: {text} ({self.path})", spoken)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as err:
                raise MemoryStoreError(f"memory read failed: {err} ({self.path})",
                                       "I couldn't read my memory right now.") from None

    # ------------------------------------------------------------------ memories
    def remember(self, text: str, *, kind: str = "remembered", turn: int | None = None) -> Memory:
        text = text.strip()
        if not text:
            raise MemoryStoreError("nothing to remember", "What should I remember?")
        now = time.time()
        with self._write("remember") as db:
            cur = db.execute("INSERT INTO memories (text, kind, created, turn) VALUES (?, ?, ?, ?)",
                             (text, kind, now, turn))
            mid = int(cur.lastrowid or 0)
            if self.fts:
                db.execute("INSERT INTO memories_fts (rowid, text) VALUES (?, ?)", (mid, text))
        return Memory(mid, text, kind, now, turn)

    def memories(self, limit: int | None = None) -> list[Memory]:
        """Newest first."""
        sql = "SELECT id, text, kind, created, turn FROM memories ORDER BY id DESC"
        rows = self._read(sql + (f" LIMIT {int(limit)}" if limit else ""))
        return [Memory(*r) for r in rows]

    def get(self, mid: int) -> Memory | None:
        rows = self._read("SELECT id, text, kind, created, turn FROM memories WHERE id = ?", (mid,))
        return Memory(*rows[0]) if rows else None

    def recall(self, question: str, k: int = 3) -> list[Memory]:
        """The memories that best match ``question`` (best first; empty if none shares a word)."""
        words = expand(query_words(question))
        if not words:
            return []
        if self.fts:
            match = " OR ".join(f'"{w}"' for w in words)
            rows = self._read(
                "SELECT m.id, m.text, m.kind, m.created, m.turn FROM memories_fts f JOIN memories m "
                "ON m.id = f.rowid WHERE memories_fts MATCH ? ORDER BY bm25(memories_fts), m.id DESC LIMIT ?",
                (match, k))
        else:
            scored: list[tuple[int, Memory]] = []
            for m in self.memories():
                hits = sum(1 for w in words if re.search(rf"\b{re.escape(w)}", m.text.lower()))
                if hits:
                    scored.append((hits, m))
            scored.sort(key=lambda hm: (-hm[0], -hm[1].id))
            return [m for _h, m in scored[:k]]
        return [Memory(*r) for r in rows]

    def delete(self, mid: int) -> Memory | None:
        """Delete one memory; the deleted one, or None if there was no such id."""
        with self._write("delete") as db:
            row = db.execute("SELECT id, text, kind, created, turn FROM memories WHERE id = ?", (mid,)).fetchone()
            if row is None:
                return None
            if self.fts:
                db.execute("INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', ?, ?)",
                           (row[0], row[1]))
            db.execute("DELETE FROM memories WHERE id = ?", (mid,))
        return Memory(*row)

    def forget_last(self) -> Memory | None:
        latest = self.memories(limit=1)
        return self.delete(latest[0].id) if latest else None

    def forget_matching(self, query: str) -> list[Memory]:
        """Delete every memory that shares a content word (or synonym) with ``query``."""
        gone = []
        for m in self.recall(query, k=1000):
            deleted = self.delete(m.id)
            if deleted is not None:
                gone.append(deleted)
        return gone

    def forget_all(self) -> int:
        with self._write("forget all") as db:
            n = db.execute("SELECT count(*) FROM memories").fetchone()[0]
            db.execute("DELETE FROM memories")
            if self.fts:
                db.execute("INSERT INTO memories_fts (memories_fts) VALUES ('delete-all')")
        return int(n)

    def export(self) -> dict[str, Any]:
        """Everything stored, as JSON-ready data (memories, turn log, timers)."""
        turns = self._read("SELECT id, question, reply, created FROM turns ORDER BY id")
        return {
            "schema_version": SCHEMA_VERSION,
            "exported": time.time(),
            "memories": [asdict(m) for m in reversed(self.memories())],
            "turns": [{"id": t[0], "question": t[1], "reply": t[2], "created": t[3]} for t in turns],
            "timers": [asdict(t) for t in self.timers(state=None)],
        }

    def export_json(self) -> str:
        return json.dumps(self.export(), indent=2, ensure_ascii=False)

    # ------------------------------------------------------------------ turn log
    def log_turn(self, question: str, reply: str) -> int:
        with self._write("log turn") as db:
            cur = db.execute("INSERT INTO turns (question, reply, created) VALUES (?, ?, ?)",
                             (question, reply, time.time()))
            return int(cur.lastrowid or 0)

    def search_turns(self, query: str, k: int = 5) -> list[tuple[int, str, str, float]]:
        words = query_words(query)
        if not words:
            return []
        clause = " OR ".join("lower(question || ' ' || reply) LIKE ?" for _ in words)
        return [tuple(r) for r in self._read(
            f"SELECT id, question, reply, created FROM turns WHERE {clause} ORDER BY id DESC LIMIT ?",
            (*[f"%{w}%" for w in words], k))]

    # ------------------------------------------------------------------ timers
    def add_timer(self, kind: str, label: str, due: float, duration: float | None = None) -> Timer:
        now = time.time()
        with self._write("add timer") as db:
            cur = db.execute("INSERT INTO timers (kind, label, due, duration, state, created) "
                             "VALUES (?, ?, ?, ?, 'pending', ?)", (kind, label, due, duration, now))
            tid = int(cur.lastrowid or 0)
        return Timer(tid, kind, label, due, duration, "pending", now)

    def timers(self, state: str | None = "pending") -> list[Timer]:
        sql = "SELECT id, kind, label, due, duration, state, created FROM timers"
        if state:
            rows = self._read(sql + " WHERE state = ? ORDER BY due", (state,))
        else:
            rows = self._read(sql + " ORDER BY id")
        return [Timer(*r) for r in rows]

    def set_timer_state(self, tid: int, state: str) -> bool:
        with self._write("timer state") as db:
            cur = db.execute("UPDATE timers SET state = ? WHERE id = ? AND state = 'pending'", (state, tid))
            return cur.rowcount > 0


def _is_lock_or_full(err: sqlite3.OperationalError) -> bool:
    text = str(err)
    return "locked" in text or "busy" in text or "full" in text or "unable to open" in text


@contextmanager
def _suppress() -> Iterator[None]:
    try:
        yield
    except Exception:  # noqa: BLE001 - cleanup after an error must not hide the first one
        pass
