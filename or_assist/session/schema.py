"""The case database's schema: DDL of each version and the ordered migrations.

Part of the case log (:mod:`or_assist.session.caselog`), the only code that knows SQL.

Versions
--------
1. ``case_info`` (one row: case id, start/end, app version, plan, geometry, labels),
   ``shots`` (timestamp, image files, registration, active implant and view),
   ``captures`` (overlay file, deviations, cue), ``events`` (kind, detail).
2. Image checksums: ``shots.raw_sha256``, ``shots.pre_sha256`` and
   ``captures.overlay_sha256`` (SHA-256 of the PNG bytes, hex) so that a damaged or
   swapped image file is detected; the migration fills them from the files present.
3. Per-shot guidance: ``shots.guidance_json`` (the shot's 2-D and two-view 3-D deviation,
   or why there is no 3-D one, as :meth:`or_assist.live.result.ShotResult.deviations`
   gives them); NULL for shots of older cases.
4. PACS archive status: ``archive`` (one row per DICOM object and destination: object key,
   kind, SOP instance UID, destination ``AE@host:port``, status ``pending`` / ``stored`` /
   ``failed``, attempts, last error and DICOM status code, time of the last change), written
   by :mod:`or_assist.session.archive`; empty for older cases.

A new case is made by the version-1 DDL followed by every migration, so a fresh case and
a migrated old one have the same schema by construction.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Callable

__all__ = ["SCHEMA_VERSION", "DDL_V1", "MIGRATIONS", "create_schema", "read_schema_version", "migrate"]

#: The schema version this code writes.
SCHEMA_VERSION = 4

DDL_V1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE case_info (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    case_id TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    app_version TEXT NOT NULL,
    plan_sha256 TEXT,
    plan_json TEXT,
    plan_path TEXT,
    geometry_json TEXT,
    patient_label TEXT,
    operator TEXT
);
CREATE TABLE shots (
    id INTEGER PRIMARY KEY,
    timestamp REAL NOT NULL,
    raw_path TEXT NOT NULL,
    raw_mask_path TEXT,
    pre_path TEXT,
    pre_mask_path TEXT,
    registration_json TEXT,
    implant_id TEXT,
    view TEXT
);
CREATE TABLE captures (
    id INTEGER PRIMARY KEY,
    shot_id INTEGER NOT NULL REFERENCES shots(id),
    timestamp REAL NOT NULL,
    overlay_path TEXT NOT NULL,
    overlay_mask_path TEXT,
    deviations_json TEXT NOT NULL,
    cue_json TEXT
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    timestamp REAL NOT NULL,
    kind TEXT NOT NULL,
    detail_json TEXT
);
CREATE INDEX captures_shot ON captures(shot_id);
INSERT INTO schema_version (version) VALUES (1);
"""


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _migrate_1_to_2(conn: sqlite3.Connection, case_dir: Path) -> None:
    """Add the image checksum columns and fill them from the files present."""
    conn.execute("ALTER TABLE shots ADD COLUMN raw_sha256 TEXT")
    conn.execute("ALTER TABLE shots ADD COLUMN pre_sha256 TEXT")
    conn.execute("ALTER TABLE captures ADD COLUMN overlay_sha256 TEXT")
    for sid, raw, pre in conn.execute("SELECT id, raw_path, pre_path FROM shots").fetchall():
        conn.execute("UPDATE shots SET raw_sha256 = ?, pre_sha256 = ? WHERE id = ?",
                     (_file_sha256(case_dir / raw), None if pre is None else _file_sha256(case_dir / pre), sid))
    for cid, overlay in conn.execute("SELECT id, overlay_path FROM captures").fetchall():
        conn.execute("UPDATE captures SET overlay_sha256 = ? WHERE id = ?", (_file_sha256(case_dir / overlay), cid))


def _migrate_2_to_3(conn: sqlite3.Connection, case_dir: Path) -> None:
    """Add the per-shot guidance column (NULL for the shots already recorded)."""
    conn.execute("ALTER TABLE shots ADD COLUMN guidance_json TEXT")


def _migrate_3_to_4(conn: sqlite3.Connection, case_dir: Path) -> None:
    """Add the PACS archive status table (empty: nothing of an older case was archived by it)."""
    conn.execute("""CREATE TABLE archive (
        id INTEGER PRIMARY KEY,
        object_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        sop_instance_uid TEXT NOT NULL,
        destination TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'stored', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        status_code INTEGER,
        updated REAL NOT NULL,
        UNIQUE (sop_instance_uid, destination)
    )""")


#: ``{target version: migration}``; each runs inside the caller's transaction.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection, Path], None]] = {2: _migrate_1_to_2, 3: _migrate_2_to_3,
                                                                    4: _migrate_3_to_4}


def read_schema_version(conn: sqlite3.Connection) -> int:
    """The version stored in ``schema_version`` (raises ``sqlite3.DatabaseError`` if absent)."""
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    if row is None or not isinstance(row[0], int):
        raise sqlite3.DatabaseError("table schema_version has no version row")
    return int(row[0])


def migrate(conn: sqlite3.Connection, case_dir: Path, target: int = SCHEMA_VERSION) -> list[int]:
    """Apply the migrations from the stored version up to ``target`` in one transaction.

    The connection must be in autocommit mode (``isolation_level=None``); on any error
    the transaction is rolled back and the database is left as it was.

    Returns
    -------
    list of int
        The versions migrated to, in order (empty when already at ``target``).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = read_schema_version(conn)
        done = []
        for v in range(version + 1, target + 1):
            MIGRATIONS[v](conn, case_dir)
            done.append(v)
        if done:
            conn.execute("UPDATE schema_version SET version = ?", (target,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return done


def create_schema(conn: sqlite3.Connection, case_dir: Path, version: int = SCHEMA_VERSION) -> None:
    """Create the tables of ``version`` in an empty database (v1 DDL, then migrations)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in DDL_V1.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    migrate(conn, case_dir, version)
