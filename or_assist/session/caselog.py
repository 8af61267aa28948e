"""The case log: a record of one operation, written as it happens.

A case is a folder (mode ``0o700``; files ``0o600``) named by its start time and a short
random id, e.g. ``20250314T091502_3fa1c2``::

    case.sqlite          SQLite database (schema in :mod:`or_assist.session.schema`)
    case.sqlite-wal/-shm SQLite's write-ahead log while the case is open
    images/              shot_000001_raw.png, shot_000001_pre.png, capture_000001.png, ...

It holds the case metadata (plan and its hash, C-arm geometry, app version, start and
end), every shot (time, raw and preprocessed frame, the registration result, the active
implant and view, text masks), every capture (the overlay exactly as shown, deviations,
cue), user events and the PACS archive status of each DICOM object made from the case
(:mod:`or_assist.session.archive`). Only this module (with :mod:`~or_assist.session.schema`) knows SQL.

Durability: the database is in WAL mode with ``synchronous=FULL``, so each committed
row is on disk when :meth:`CaseLog.log_shot` returns (one ``fsync`` per shot, far
below the shot rate; ``NORMAL`` could lose the last commits on power loss). Each row's
images are written atomically and synced *before* the row is committed, so a crash or
power loss loses at most the shot in progress and never leaves a committed row without
its images. Leftover files of an uncommitted shot are overwritten by the next one.

Values: times are wall-clock seconds since the Unix epoch (``time.time()``, not a
monotonic frame clock); registration, deviations and cue are stored as the JSON of the
dicts given (or of ``obj.to_dict()``). The report reads ``deviations["deviation_2d"]``
(``tip_offset_mm``, ``angle_deg``) and ``deviations["deviation_3d"]``
(``apex_deviation_mm``, ``angle_deg``, ``uncertainty``, ``shots``) as in
``or_assist.pin_deviation/1``, and a cue's ``level`` (or ``colour``) and ``lines`` (or
``text``). A shot carries the same deviations as a capture (``guidance``, schema
version 3), so the two-view 3-D deviation is recorded for every shot that gave one,
captured or not.

Text masks (bool, the image's height and width, true on burnt-in text that may show the
patient's name) are kept beside the images; stored images are unmasked (the record),
exported ones masked by default (:mod:`or_assist.session.export`).

Longer than 400 lines because :class:`CaseLog` is one class that owns the SQLite connection,
its transactions and the image files written with them; splitting it would spread one
transaction over modules.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np

from or_assist import __version__
from or_assist.core.jsonio import loads_json, to_jsonable
from or_assist.core.outputs import remove_quietly, write_reason
from or_assist.core.validate import is_finite_number, is_integer
from or_assist.errors import InputError
from or_assist.session import schema
from or_assist.session.images import (check_image, check_mask, encode_png, fsync_dir, read_png,
                                      write_file_atomic)

__all__ = ["CASE_DB", "IMAGES_DIR", "FOLDER_MODE", "ARCHIVE_STATUSES", "CaseLog", "default_cases_root", "list_cases"]

CASE_DB = "case.sqlite"
IMAGES_DIR = "images"
FOLDER_MODE = 0o700
ARCHIVE_STATUSES = ("pending", "stored", "failed")  # of a DICOM object at a PACS (record_archive)
INTERRUPTED_EVENT = "interrupted"  # event kind of a case that ended because of a fault; detail {"reason"}
_EPOCH_2000_S = 946684800.0


def _storage_error(exc: sqlite3.Error) -> bool:
    """True for SQLite errors of the storage (I/O error, disk full, read-only), not of the file's content."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_IOERR", "SQLITE_FULL", "SQLITE_READONLY", "SQLITE_CANTOPEN"))


def default_cases_root() -> Path:
    """``$OR_ASSIST_CASES``, else ``$XDG_DATA_HOME/or_assist/cases``, else ``~/.local/share/or_assist/cases``."""
    env = os.environ.get("OR_ASSIST_CASES")
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "or_assist" / "cases"


def _dumps(value, name: str) -> str | None:
    """JSON text of a dict (or of ``value.to_dict()``); ``None`` stays ``None``."""
    if value is None:
        return None
    if hasattr(value, "to_dict") and not isinstance(value, dict):
        value = value.to_dict()
    if not isinstance(value, dict):
        raise InputError(f"expected a dict (or an object with to_dict()), got {type(value).__name__}", name)
    try:
        return json.dumps(value, default=to_jsonable, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise InputError(f"cannot be stored as JSON ({exc})", name) from None


def _timestamp(value, name: str = "timestamp") -> float:
    if value is None:
        return time.time()
    if not is_finite_number(value):
        raise InputError(f"expected wall-clock seconds since the epoch, got {value!r}", name)
    if value < _EPOCH_2000_S:
        raise InputError(f"expected wall-clock seconds since the epoch (time.time()), got {value!r}, "
                         "which looks like a monotonic clock", name)
    return float(value)


def _check_text(value, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"expected a string, got {type(value).__name__}", name)
    return value


class CaseLog:
    """One case folder, open for writing (the app) or reading (report, export).

    Make one with :meth:`create` or :meth:`open`; use it as a context manager or call
    :meth:`close`. Writing methods are thread-safe (one lock). ``problems`` lists what
    the integrity check on opening found (missing image files, an interrupted case).
    """

    def __init__(self, case_dir: Path, conn: sqlite3.Connection, *, readonly: bool, version: int,
                 migrated_from: int | None = None):
        self.case_dir = Path(case_dir)
        self.readonly = readonly
        self.schema_version = version
        self.migrated_from = migrated_from
        self._conn = conn
        self._lock = threading.Lock()
        self._closed = False
        self.problems: list[str] = []

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(cls, root_dir=None, *, plan=None, plan_path=None, geometry=None, patient_label=None,
               operator=None, started=None) -> "CaseLog":
        """Start a new case in a new folder under ``root_dir``.

        Parameters
        ----------
        root_dir : path-like, optional
            Folder of cases (created ``0o700`` if missing); default :func:`default_cases_root`.
        plan : Plan, optional
            The plan in use; its JSON and :meth:`Plan.sha256` are recorded.
        plan_path : path-like, optional
            The plan file (loaded when ``plan`` is not given).
        geometry : CArmGeometry or dict, optional
            The C-arm geometry (``or_assist.geometry/1``).
        patient_label, operator : str, optional
            Free text, removed by pseudonymised exports.
        started : float, optional
            Start time (wall-clock seconds); default now.

        Returns
        -------
        CaseLog
            Open for writing.
        """
        from or_assist.core.plan import Plan, load_plan, plan_to_dict

        if plan is None and plan_path is not None:
            plan = load_plan(plan_path)
        if plan is not None and not isinstance(plan, Plan):
            raise InputError(f"expected a Plan, got {type(plan).__name__}", "plan")
        plan_json = None if plan is None else _dumps(plan_to_dict(plan), "plan")
        plan_sha = None if plan is None else plan.sha256()
        geometry_json = _dumps(geometry, "geometry")
        patient_label = _check_text(patient_label, "patient_label")
        operator = _check_text(operator, "operator")
        started = _timestamp(started, "started")

        root = default_cases_root() if root_dir is None else Path(root_dir)
        if root.exists() and not root.is_dir():
            raise InputError("exists and is not a folder", str(root))
        root.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(started))
        case_id = f"{stamp}_{secrets.token_hex(3)}"
        case_dir = root / case_id
        case_dir.mkdir(mode=FOLDER_MODE)
        os.chmod(case_dir, FOLDER_MODE)
        (case_dir / IMAGES_DIR).mkdir(mode=FOLDER_MODE)
        os.chmod(case_dir / IMAGES_DIR, FOLDER_MODE)
        db = case_dir / CASE_DB
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # WAL/SHM inherit this mode
        conn = cls._connect(db, readonly=False)
        cls._pragmas(conn, db)
        schema.create_schema(conn, case_dir)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO case_info (id, case_id, started, app_version, plan_sha256, plan_json, plan_path, "
                     "geometry_json, patient_label, operator) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (case_id, started, __version__, plan_sha, plan_json,
                      None if plan_path is None else str(Path(plan_path).resolve()), geometry_json,
                      patient_label, operator))
        conn.execute("COMMIT")
        fsync_dir(case_dir)
        return cls(case_dir, conn, readonly=False, version=schema.SCHEMA_VERSION)

    @staticmethod
    def _connect(db: Path, *, readonly: bool) -> sqlite3.Connection:
        uri = f"{db.resolve().as_uri()}?mode={'ro' if readonly else 'rw'}"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=10.0)
        if not readonly:
            return conn
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.DatabaseError as exc:
            wal = Path(f"{db}-wal")
            if not _storage_error(exc) or (wal.exists() and wal.stat().st_size > 0):
                return conn      # the caller reports it
        # A closed case on read-only storage (archive, read-only mount): SQLite cannot make
        # its shared-memory file beside it. With no pending write-ahead log, reading the file
        # as immutable gives exactly its content.
        conn.close()
        return sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None, check_same_thread=False,
                               timeout=10.0)

    @staticmethod
    def _pragmas(conn: sqlite3.Connection, db: Path) -> None:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise InputError(f"SQLite could not switch to WAL mode (got {mode!r})", str(db))
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")

    @classmethod
    def open(cls, case_dir, readonly: bool = False) -> "CaseLog":
        """Open an existing case folder.

        A case from an older schema is migrated in one transaction after a backup copy
        ``case.sqlite.v<N>.bak`` (read-only opening reads it as it is).

        Raises
        ------
        InputError
            Not a folder; no ``case.sqlite``; an empty, truncated or corrupted database;
            a case written by a newer or_assist (names both schema versions); a
            half-written case without metadata. The case is never changed on error.
        """
        case_dir = Path(case_dir)
        if not case_dir.is_dir():
            raise InputError("not a folder (expected a case folder made by or_assist)", str(case_dir))
        db = case_dir / CASE_DB
        if not db.is_file():
            raise InputError(f"not a case folder: {CASE_DB} is missing", str(case_dir))
        if db.stat().st_size == 0 and not Path(f"{db}-wal").exists():
            raise InputError("empty database: the case was never initialised (half-written case)", str(db))
        try:
            conn = cls._connect(db, readonly=readonly)
        except sqlite3.Error as exc:
            raise InputError(f"cannot open the case database ({exc})", str(db)) from None
        try:
            version = cls._check_database(conn, db, case_dir)
            if not readonly:
                cls._pragmas(conn, db)
            else:
                conn.execute("PRAGMA query_only=ON")
            migrated_from = None
            if version < schema.SCHEMA_VERSION and not readonly:
                backup = case_dir / f"{CASE_DB}.v{version}.bak"
                cls._backup(conn, backup)
                schema.migrate(conn, case_dir)
                migrated_from, version = version, schema.SCHEMA_VERSION
            if conn.execute("SELECT COUNT(*) FROM case_info").fetchone()[0] != 1:
                raise InputError("half-written case: no case metadata row (the case start was interrupted)", str(db))
        except sqlite3.DatabaseError as exc:
            conn.close()
            if _storage_error(exc):
                raise InputError(f"could not read or update the case database ({exc}): a full disk, a read-only "
                                 "or failing storage?", str(db)) from None
            raise InputError(f"the case database is damaged ({exc}); nothing was changed", str(db)) from None
        except BaseException:
            conn.close()
            raise
        log = cls(case_dir, conn, readonly=readonly, version=version, migrated_from=migrated_from)
        log.problems = log.check_files()
        reason = log.interrupted_reason()
        if reason is not None:
            log.problems.append(f"the case was interrupted: {reason}")
        elif log.case_summary()["ended"] is None:
            log.problems.append("the case has no end time: it is still open or was interrupted (crash or power loss)")
        return log

    @staticmethod
    def _check_database(conn: sqlite3.Connection, db: Path, case_dir: Path) -> int:
        try:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            if _storage_error(exc):
                raise InputError(f"could not read the case database ({exc}): a full disk, a read-only or "
                                 "failing storage?", str(db)) from None
            raise InputError(f"not a readable SQLite database ({exc}); it may be truncated or corrupted; "
                             "nothing was changed", str(db)) from None
        if "schema_version" not in names:
            raise InputError("not a case database (no schema_version table): half-written or not made by "
                             "or_assist", str(db))
        version = schema.read_schema_version(conn)
        if version > schema.SCHEMA_VERSION:
            raise InputError(f"the case has schema version {version}, newer than the version "
                             f"{schema.SCHEMA_VERSION} this or_assist {__version__} reads; open it with a newer "
                             "or_assist (the case was not changed)", str(case_dir))
        if version < 1:
            raise InputError(f"invalid schema version {version}", str(db))
        bad = [r[0] for r in conn.execute("PRAGMA quick_check")]
        if bad != ["ok"]:
            raise InputError("database integrity check failed: " + "; ".join(bad[:3]), str(db))
        return version

    @staticmethod
    def _backup(conn: sqlite3.Connection, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            dest = sqlite3.connect(tmp)
            try:
                conn.backup(dest)
            finally:
                dest.close()
            os.replace(tmp, path)
        except BaseException:
            remove_quietly(tmp)     # no half-written backup left behind (disk full, read-only)
            raise

    # ------------------------------------------------------------------ writing
    def _check_writable(self) -> None:
        if self._closed:
            raise InputError("the case log is closed", str(self.case_dir))
        if self.readonly:
            raise InputError("the case was opened read-only", str(self.case_dir))

    def _write_image(self, rel: str, image: np.ndarray, name: str) -> str:
        return write_file_atomic(self.case_dir / rel, encode_png(image, name), sync_dir=False)

    def log_shot(self, frame, *, timestamp=None, preprocessed=None, registration=None, implant_id=None,
                 view=None, text_mask=None, preprocessed_text_mask=None, guidance=None) -> int:
        """Record a shot; returns its id once it is committed to disk.

        Parameters
        ----------
        frame : (H, W) or (H, W, 3) uint8/uint16 ndarray
            The raw frame as grabbed.
        timestamp : float, optional
            Wall-clock seconds since the epoch; default now.
        preprocessed : ndarray, optional
            The preprocessed frame as displayed (same dtypes).
        registration : dict or RegistrationResult, optional
            ``or_assist.registration/1`` document (or object with ``to_dict``).
        implant_id, view : str, optional
            Active implant and view name.
        text_mask, preprocessed_text_mask : (H, W) bool ndarray, optional
            Burnt-in text of ``frame`` / ``preprocessed``.
        guidance : dict, optional
            The shot's deviations as a capture stores them
            (``{"deviation_2d": ..., "deviation_3d": ..., "deviation_3d_refused": ...}``).
        """
        self._check_writable()
        frame = check_image(frame, "frame")
        pre = None if preprocessed is None else check_image(preprocessed, "preprocessed")
        raw_mask = None if text_mask is None else check_mask(text_mask, frame.shape, "text_mask")
        if preprocessed_text_mask is not None and pre is None:
            raise InputError("given without a preprocessed frame", "preprocessed_text_mask")
        pre_mask = None if preprocessed_text_mask is None else check_mask(preprocessed_text_mask, pre.shape,
                                                                          "preprocessed_text_mask")
        ts = _timestamp(timestamp)
        reg = _dumps(registration, "registration")
        guidance_json = _dumps(guidance, "guidance")
        implant_id, view = _check_text(implant_id, "implant_id"), _check_text(view, "view")
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                sid = self._conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM shots").fetchone()[0]
                base = f"{IMAGES_DIR}/shot_{sid:06d}"
                paths = {"raw": f"{base}_raw.png", "raw_mask": None if raw_mask is None else f"{base}_raw_mask.png",
                         "pre": None if pre is None else f"{base}_pre.png",
                         "pre_mask": None if pre_mask is None else f"{base}_pre_mask.png"}
                raw_sha = self._write_image(paths["raw"], frame, "frame")
                pre_sha = None if pre is None else self._write_image(paths["pre"], pre, "preprocessed")
                if raw_mask is not None:
                    self._write_image(paths["raw_mask"], raw_mask, "text_mask")
                if pre_mask is not None:
                    self._write_image(paths["pre_mask"], pre_mask, "preprocessed_text_mask")
                fsync_dir(self.case_dir / IMAGES_DIR)
                self._conn.execute(
                    "INSERT INTO shots (id, timestamp, raw_path, raw_mask_path, pre_path, pre_mask_path, "
                    "registration_json, implant_id, view, raw_sha256, pre_sha256, guidance_json) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (sid, ts, paths["raw"], paths["raw_mask"], paths["pre"], paths["pre_mask"], reg, implant_id,
                     view, raw_sha, pre_sha, guidance_json))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return int(sid)

    def log_capture(self, shot_id: int, overlay_image, deviations, cue=None, *, timestamp=None,
                    text_mask=None) -> int:
        """Record a capture: the overlay exactly as shown, its deviations and cue.

        Parameters
        ----------
        shot_id : int
            The shot the overlay was drawn on (from :meth:`log_shot`).
        overlay_image : (H, W, 3) or (H, W) uint8 ndarray
            The displayed image with its overlay (BGR).
        deviations : dict
            e.g. ``{"deviation_2d": {...}, "deviation_3d": {...} or None}``.
        cue : dict or Cue, optional
            ``{"level": ..., "lines": [...]}`` (or ``colour``/``text``).
        timestamp : float, optional
            Wall-clock seconds; default now.
        text_mask : (H, W) bool ndarray, optional
            Burnt-in text of the overlay; by default exports use the shot's mask of the
            same size.
        """
        self._check_writable()
        if not is_integer(shot_id):
            raise InputError(f"expected an integer shot id, got {shot_id!r}", "shot_id")
        overlay = check_image(overlay_image, "overlay_image")
        mask = None if text_mask is None else check_mask(text_mask, overlay.shape, "text_mask")
        if deviations is None:
            deviations = {}
        dev = _dumps(deviations, "deviations")
        cue_json = _dumps(cue, "cue")
        ts = _timestamp(timestamp)
        with self._lock:
            if self._conn.execute("SELECT 1 FROM shots WHERE id = ?", (int(shot_id),)).fetchone() is None:
                raise InputError(f"no shot {int(shot_id)} in this case", "shot_id")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                cid = self._conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM captures").fetchone()[0]
                rel = f"{IMAGES_DIR}/capture_{cid:06d}.png"
                rel_mask = None if mask is None else f"{IMAGES_DIR}/capture_{cid:06d}_mask.png"
                sha = self._write_image(rel, overlay, "overlay_image")
                if mask is not None:
                    self._write_image(rel_mask, mask, "text_mask")
                fsync_dir(self.case_dir / IMAGES_DIR)
                self._conn.execute(
                    "INSERT INTO captures (id, shot_id, timestamp, overlay_path, overlay_mask_path, deviations_json, "
                    "cue_json, overlay_sha256) VALUES (?,?,?,?,?,?,?,?)",
                    (cid, int(shot_id), ts, rel, rel_mask, dev, cue_json, sha))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return int(cid)

    def log_event(self, kind: str, detail=None, *, timestamp=None) -> int:
        """Record a user or system event (``kind`` e.g. ``"implant_selected"``; ``detail``
        a dict, a string or None)."""
        self._check_writable()
        if not isinstance(kind, str) or not kind.strip():
            raise InputError(f"expected a non-empty string, got {kind!r}", "kind")
        detail_json = _dumps({"text": detail} if isinstance(detail, str) else detail, "detail")
        ts = _timestamp(timestamp)
        with self._lock:
            cur = self._conn.execute("INSERT INTO events (timestamp, kind, detail_json) VALUES (?,?,?)",
                                     (ts, kind, detail_json))
        return int(cur.lastrowid)

    def record_archive(self, object_key: str, kind: str, sop_instance_uid: str, destination: str, status: str, *,
                       attempts: int = 0, error: str | None = None, status_code: int | None = None,
                       timestamp=None) -> None:
        """Record the PACS archive status of one DICOM object at one destination (schema 4).

        One row per (SOP instance UID, destination): a new status replaces the old one,
        ``attempts`` are added to those recorded; a ``"pending"`` status keeps the last error.

        Parameters
        ----------
        object_key : str
            The object in the case, e.g. ``"capture/3/overlay"`` or ``"report"``.
        kind : str
            ``"capture"``, ``"capture_overlay"`` or ``"report"``.
        sop_instance_uid : str
        destination : str
            ``AE@host:port``.
        status : str
            ``"pending"``, ``"stored"`` or ``"failed"``.
        attempts : int
            C-STORE requests made now.
        error : str, optional
            Why it failed (or the warning it was stored with).
        status_code : int, optional
            The DICOM status of the last response.
        timestamp : float, optional
            Wall-clock seconds; default now.
        """
        self._check_writable()
        if status not in ARCHIVE_STATUSES:
            raise InputError(f"expected one of {', '.join(ARCHIVE_STATUSES)}, got {status!r}", "status")
        for name, value in (("object_key", object_key), ("kind", kind), ("sop_instance_uid", sop_instance_uid),
                            ("destination", destination)):
            if not isinstance(value, str) or not value:
                raise InputError(f"expected a non-empty string, got {value!r}", name)
        if not is_integer(attempts) or attempts < 0:
            raise InputError(f"expected a count >= 0, got {attempts!r}", "attempts")
        ts = _timestamp(timestamp)
        with self._lock:
            self._conn.execute(
                "INSERT INTO archive (object_key, kind, sop_instance_uid, destination, status, attempts, last_error, "
                "status_code, updated) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (sop_instance_uid, destination) DO UPDATE "
                "SET object_key = excluded.object_key, kind = excluded.kind, status = excluded.status, "
                "attempts = archive.attempts + excluded.attempts, "
                "last_error = CASE WHEN excluded.status = 'pending' THEN archive.last_error ELSE excluded.last_error END, "
                "status_code = CASE WHEN excluded.status = 'pending' THEN archive.status_code "
                "ELSE excluded.status_code END, updated = excluded.updated",
                (object_key, kind, sop_instance_uid, destination, status, int(attempts), _check_text(error, "error"),
                 None if status_code is None else int(status_code), ts))

    def archive_status(self, destination: str | None = None) -> list[dict]:
        """The archive rows (all destinations, or one), in the order first recorded: ``object_key``,
        ``kind``, ``sop_instance_uid``, ``destination``, ``status``, ``attempts``, ``last_error``,
        ``status_code``, ``updated``. Empty for a case of an older schema opened read-only."""
        if self.schema_version < 4:
            return []
        sql, params = "SELECT * FROM archive", ()
        if destination is not None:
            sql, params = sql + " WHERE destination = ?", (destination,)
        return [{k: r[k] for k in r if k != "id"} for r in self._rows(sql + " ORDER BY id", params)]

    def mark_interrupted(self, reason: str) -> int:
        """Record that the case ended because of a fault (event ``"interrupted"``, ``{"reason"}``).

        Parameters
        ----------
        reason : str
            One plain sentence: what happened (a write failure, a silent source, ...).

        Returns
        -------
        int
            The event id.
        """
        return self.log_event(INTERRUPTED_EVENT, {"reason": _check_text(str(reason), "reason")})

    def interrupted_reason(self) -> str | None:
        """The reason of the first ``"interrupted"`` event, or None for a case that was not interrupted."""
        for row in self._rows("SELECT detail_json FROM events WHERE kind = ? ORDER BY timestamp, id",
                              (INTERRUPTED_EVENT,)):
            detail = self._loads(row["detail_json"], "interrupted event")
            if isinstance(detail, dict) and detail.get("reason"):
                return str(detail["reason"])
            return "no reason recorded"
        return None

    def close(self, end: bool = True, *, ended=None) -> None:
        """Close the log; when writable and ``end``, record the end time first."""
        if self._closed:
            return
        with self._lock:
            try:
                if not self.readonly:
                    if end:
                        self._conn.execute("UPDATE case_info SET ended = ? WHERE id = 1", (_timestamp(ended, "ended"),))
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._conn.close()
                self._closed = True

    def __enter__(self) -> "CaseLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ reading
    def _rows(self, sql: str, params=()) -> list[dict]:
        if self._closed:
            raise InputError("the case log is closed", str(self.case_dir))
        cur = self._conn.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def _loads(self, text, where: str):
        if text is None:
            return None
        if not isinstance(text, str):
            raise InputError(f"stored JSON is damaged (a {type(text).__name__}, not text)",
                             f"{self.case_dir / CASE_DB}: {where}")
        try:
            return loads_json(text, where)
        except InputError as exc:
            raise InputError(f"stored JSON is damaged ({exc})", f"{self.case_dir / CASE_DB}: {where}") from None

    def _path(self, rel):
        return None if rel is None else self.case_dir / rel

    def case_summary(self) -> dict:
        """Case metadata and counts (times in wall-clock seconds; plan and geometry as dicts)."""
        info = self._rows("SELECT * FROM case_info WHERE id = 1")[0]
        counts = {t: self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("shots", "captures", "events")}
        return {"case_id": info["case_id"], "folder": str(self.case_dir), "schema_version": self.schema_version,
                "started": info["started"], "ended": info["ended"], "app_version": info["app_version"],
                "plan_sha256": info["plan_sha256"], "plan": self._loads(info["plan_json"], "case_info.plan_json"),
                "plan_path": info["plan_path"],
                "geometry": self._loads(info["geometry_json"], "case_info.geometry_json"),
                "patient_label": info["patient_label"], "operator": info["operator"],
                "n_shots": counts["shots"], "n_captures": counts["captures"], "n_events": counts["events"],
                "problems": list(self.problems)}

    def shots(self) -> list[dict]:
        """Every shot in order: ``id``, ``timestamp``, image paths (absolute; ``None`` when not
        recorded), checksums, ``registration`` (dict or None), ``implant_id``, ``view``,
        ``guidance`` (the shot's deviations as a capture stores them; ``{}`` when not
        recorded) and ``missing`` (image files that are referenced but absent)."""
        out = []
        for r in self._rows("SELECT * FROM shots ORDER BY id"):
            d = {"id": r["id"], "timestamp": r["timestamp"], "implant_id": r["implant_id"], "view": r["view"],
                 "registration": self._loads(r["registration_json"], f"shot {r['id']} registration"),
                 "guidance": self._loads(r.get("guidance_json"), f"shot {r['id']} guidance") or {},
                 "raw_sha256": r.get("raw_sha256"), "pre_sha256": r.get("pre_sha256")}
            for key in ("raw", "raw_mask", "pre", "pre_mask"):
                d[f"{key}_path"] = self._path(r[f"{key}_path"])
            d["missing"] = [str(d[f"{k}_path"]) for k in ("raw", "raw_mask", "pre", "pre_mask")
                            if d[f"{k}_path"] is not None and not d[f"{k}_path"].is_file()]
            out.append(d)
        return out

    def captures(self) -> list[dict]:
        """Every capture in order: ``id``, ``shot_id``, ``timestamp``, ``overlay_path``,
        ``overlay_mask_path``, ``overlay_sha256``, ``deviations``, ``cue``, the shot's
        ``implant_id`` and ``view``, and ``missing``."""
        out = []
        for r in self._rows("SELECT c.*, s.implant_id AS implant_id, s.view AS view FROM captures c "
                            "JOIN shots s ON s.id = c.shot_id ORDER BY c.id"):
            d = {"id": r["id"], "shot_id": r["shot_id"], "timestamp": r["timestamp"], "implant_id": r["implant_id"],
                 "view": r["view"], "overlay_path": self._path(r["overlay_path"]),
                 "overlay_mask_path": self._path(r["overlay_mask_path"]), "overlay_sha256": r.get("overlay_sha256"),
                 "deviations": self._loads(r["deviations_json"], f"capture {r['id']} deviations") or {},
                 "cue": self._loads(r["cue_json"], f"capture {r['id']} cue")}
            d["missing"] = [str(p) for p in (d["overlay_path"], d["overlay_mask_path"]) if p is not None and not p.is_file()]
            out.append(d)
        return out

    def events(self) -> list[dict]:
        """Every event in order: ``id``, ``timestamp``, ``kind``, ``detail``."""
        return [{"id": r["id"], "timestamp": r["timestamp"], "kind": r["kind"],
                 "detail": self._loads(r["detail_json"], f"event {r['id']} detail")}
                for r in self._rows("SELECT * FROM events ORDER BY timestamp, id")]

    def database_settings(self) -> dict:
        """SQLite settings in effect: ``journal_mode``, ``synchronous`` (0 off, 1 normal,
        2 full) and ``foreign_keys`` (0/1)."""
        return {name: self._rows(f"PRAGMA {name}")[0][name] for name in ("journal_mode", "synchronous", "foreign_keys")}

    def check_files(self) -> list[str]:
        """Problems with the image files: each referenced file that is missing, by row."""
        problems = []
        for s in self.shots():
            problems += [f"shot {s['id']}: image file missing: {p}" for p in s["missing"]]
        for c in self.captures():
            problems += [f"capture {c['id']}: image file missing: {p}" for p in c["missing"]]
        return problems

    def read_image(self, path, sha256: str | None = None) -> np.ndarray:
        """Read one of the case's images (see :func:`or_assist.session.images.read_png`)."""
        return read_png(Path(path), sha256)


def _looks_like_case(folder: Path) -> bool:
    """A folder with a case database or an images folder; one that cannot be looked into counts
    (it is then listed as damaged, with the reason)."""
    try:
        return folder.is_dir() and ((folder / CASE_DB).exists() or (folder / IMAGES_DIR).is_dir())
    except OSError:
        return True


def _partial_files(folder: Path) -> list[str]:
    """Temporary files of atomic writes that could not be removed (e.g. the folder turned
    read-only mid-write), relative to the case folder."""
    try:
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob(".*.tmp") if p.is_file())
    except OSError:
        return []


def list_cases(root=None) -> list[dict]:
    """The cases under ``root`` (default :func:`default_cases_root`), oldest first.

    Each entry is the :meth:`CaseLog.case_summary` of the case without plan and geometry
    (``status`` ``"closed"``, ``"interrupted: <reason>"`` for a case that recorded a fault,
    or ``"open or interrupted"`` for one without an end time, followed by the partial files an
    interrupted write could not remove, if any), or ``{"folder", "error"}``
    for a folder that cannot be read (a damaged case). A missing default root gives an
    empty list.

    Raises
    ------
    InputError
        An explicitly given ``root`` that is not a folder.
    """
    explicit = root is not None
    root = default_cases_root() if root is None else Path(root)
    if not root.is_dir():
        if explicit:
            raise InputError("not a folder of cases", str(root))
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if _looks_like_case(p)):
        try:
            with CaseLog.open(folder, readonly=True) as log:
                s = log.case_summary()
                reason = log.interrupted_reason()
        except OSError as exc:
            out.append({"folder": str(folder), "error": f"cannot read {exc.filename or folder}: {write_reason(exc)}"})
            continue
        except (InputError, sqlite3.Error) as exc:
            out.append({"folder": str(folder), "error": str(exc)})
            continue
        s.pop("plan")
        s.pop("geometry")
        s["status"] = (f"interrupted: {reason}" if reason is not None
                       else "closed" if s["ended"] is not None else "open or interrupted")
        partial = _partial_files(folder)
        if partial:
            s["status"] += (f"; {len(partial)} partial file(s) left by an interrupted write (safe to delete): "
                            + ", ".join(partial))
        out.append(s)
    return out
