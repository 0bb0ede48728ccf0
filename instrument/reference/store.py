"""The reference backend's settings and presets: an SQLite database under
$HOME (WAL mode, as Auralis's library.db), so the crash_restart,
concurrent_writes and shutdown checks have real persisted state to probe.

Clean: one connection, writes serialised by a lock, each committed before it
is acknowledged, the WAL checkpointed and the connection closed at shutdown.
Injections (injections.py) break exactly one of those promises each:
  restart-loses-settings   settings live in memory; written only at shutdown
  unsafe-concurrent-write  presets as one JSON row, read-modify-write outside
                           any lock, on a fresh connection that never waits
                           for the write lock (busy timeout 0)"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SETTING_KEYS = ("theme", "volume", "default_preset")


class Store:
    def __init__(self, home: Path, injections: frozenset[str] = frozenset()):
        self.path = Path(home) / ".earshot-reference" / "state.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.inj = injections
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=5.0, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS presets (name TEXT PRIMARY KEY, body TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS blobs (name TEXT PRIMARY KEY, body TEXT NOT NULL)")
        self._db.commit()
        self._pending: dict[str, Any] = {}  # restart-loses-settings: written at shutdown only

    # -- settings -------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM settings").fetchall()
        out = {k: json.loads(v) for k, v in rows}
        out.update(self._pending)
        return out

    def update_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        values = {k: v for k, v in values.items() if k in SETTING_KEYS and v is not None}
        if "restart-loses-settings" in self.inj:
            self._pending.update(values)
            return self.settings()
        with self._lock:
            self._db.executemany("INSERT INTO settings (key, value) VALUES (?, ?) "
                                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                 [(k, json.dumps(v)) for k, v in values.items()])
            self._db.commit()
        return self.settings()

    # -- presets --------------------------------------------------------------
    def presets(self) -> list[dict[str, Any]]:
        if "unsafe-concurrent-write" in self.inj:
            return list(self._blob().values())
        with self._lock:
            rows = self._db.execute("SELECT body FROM presets ORDER BY name").fetchall()
        return [json.loads(b) for (b,) in rows]

    def add_preset(self, preset: dict[str, Any]) -> dict[str, Any]:
        if "unsafe-concurrent-write" in self.inj:
            self._unsafe_add(preset)
            return preset
        with self._lock:
            self._db.execute("INSERT INTO presets (name, body) VALUES (?, ?) "
                             "ON CONFLICT(name) DO UPDATE SET body = excluded.body",
                             (preset["name"], json.dumps(preset)))
            self._db.commit()
        return preset

    def _blob(self) -> dict[str, Any]:
        con = sqlite3.connect(str(self.path), timeout=0)
        try:
            row = con.execute("SELECT body FROM blobs WHERE name = 'presets'").fetchone()
        finally:
            con.close()
        return json.loads(row[0]) if row else {}

    def _unsafe_add(self, preset: dict[str, Any]) -> None:
        """The defect: read, modify, write back, with nothing serialising
        writers: a concurrent write in between is lost, and a writer that
        meets another's open transaction fails at once ("database is locked")."""
        current = self._blob()
        current[preset["name"]] = preset
        time.sleep(0.04)  # validating the preset: another write can commit meanwhile, and is overwritten
        con = sqlite3.connect(str(self.path), timeout=0)
        try:
            con.execute("INSERT INTO blobs (name, body) VALUES ('presets', ?) "
                        "ON CONFLICT(name) DO UPDATE SET body = excluded.body", (json.dumps(current),))
            time.sleep(0.01)  # the rest of the handler's work, inside the transaction
            con.commit()
        finally:
            con.close()

    # -- lifecycle --------------------------------------------------------------
    def close(self) -> None:
        """Flush, checkpoint the WAL into the database, close."""
        with self._lock:
            if self._pending:
                self._db.executemany("INSERT INTO settings (key, value) VALUES (?, ?) "
                                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                     [(k, json.dumps(v)) for k, v in self._pending.items()])
                self._db.commit()
                self._pending.clear()
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
