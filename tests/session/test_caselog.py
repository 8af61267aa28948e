"""Tests of the case log: round trip, durability under SIGKILL, permissions, schema
migration, bad and damaged cases, listing, export with text masking and pseudonymisation.

SQL appears here only to build cases as an older or_assist (or damage) would have left
them, and to read back the database settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from or_assist import __version__
from or_assist.errors import InputError
from or_assist.session import schema
from or_assist.session.caselog import CASE_DB, CaseLog, default_cases_root, list_cases
from or_assist.session.export import export_case
from or_assist.session.images import apply_text_mask
from tests.session.caselog_cases import (OPERATOR, PATIENT, T0, make_frame, make_geometry, make_plan, overlay_of,
                                 record_case, registration)
from tests.conftest import REPO_ROOT

REPO = REPO_ROOT


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree_hashes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): _sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- round trip


def test_round_trip_of_everything_written(recorded):
    case_dir, written = recorded
    assert re.fullmatch(r"\d{8}T\d{6}_[0-9a-f]{6}", case_dir.name)
    with CaseLog.open(case_dir, readonly=True) as log:
        s = log.case_summary()
        assert s["plan_sha256"] == make_plan().sha256()
        assert [i["id"] for i in s["plan"]["implants"]] == ["L1", "L2"]
        assert s["geometry"] == make_geometry().to_dict()
        assert (s["app_version"], s["schema_version"]) == (__version__, schema.SCHEMA_VERSION)
        assert (s["started"], s["ended"]) == (T0, T0 + 600)
        assert (s["patient_label"], s["operator"]) == (PATIENT, OPERATOR)
        assert (s["n_shots"], s["n_captures"], s["n_events"]) == (4, 3, 2)
        assert log.problems == []
        shots = log.shots()
        assert [x["id"] for x in shots] == [1, 2, 3, 4]
        for x in shots:
            frame = written["frames"][x["id"]]
            assert np.array_equal(log.read_image(x["raw_path"], x["raw_sha256"]), frame)
            assert np.array_equal(log.read_image(x["pre_path"], x["pre_sha256"]), frame[20:220, 40:280])
            assert np.array_equal(log.read_image(x["raw_mask_path"]) > 0, written["masks"][x["id"]])
        assert shots[1]["registration"] == registration(False, 2.0)
        assert (shots[3]["implant_id"], shots[3]["view"], shots[3]["timestamp"]) == ("L2", "outlet", T0 + 185)
        caps = log.captures()
        assert [(c["id"], c["shot_id"]) for c in caps] == [(1, 1), (2, 3), (3, 4)]
        for c in caps:
            assert np.array_equal(log.read_image(c["overlay_path"], c["overlay_sha256"]), written["overlays"][c["id"]])
        assert caps[1]["deviations"]["deviation_3d"] == {"apex_deviation_mm": 3.25, "angle_deg": 4.5}
        assert caps[2]["cue"]["level"] == "green" and caps[2]["implant_id"] == "L2"
        assert [(e["kind"], e["detail"]) for e in log.events()] == [
            ("implant_selected", {"implant": "L2"}), ("note", {"text": "patient DOE repositioned"})]


def test_uint16_and_colour_frames_round_trip(tmp_path):
    frame16 = (np.arange(60 * 80, dtype=np.uint16).reshape(60, 80) * 13)
    colour = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    with CaseLog.create(tmp_path, started=T0) as log:
        a = log.log_shot(frame16, timestamp=np.float64(T0 + 1))
        b = log.log_shot(colour, timestamp=T0 + 2, preprocessed=colour[:, :, 0])
        rows = {r["id"]: r for r in log.shots()}
        assert log.read_image(rows[a]["raw_path"]).dtype == np.uint16
        assert np.array_equal(log.read_image(rows[a]["raw_path"]), frame16)
        assert np.array_equal(log.read_image(rows[b]["raw_path"]), colour)


def test_database_settings_and_permissions(tmp_path):
    old = os.umask(0)  # even with a permissive umask, nothing is readable by others
    try:
        log, _ = record_case(tmp_path / "root", close=False)
        db = log.case_dir / CASE_DB
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # stored in the file
        conn.close()
        assert log.database_settings() == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1}
        log.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(log.case_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((log.case_dir / "images").stat().st_mode) == 0o700
    files = [p for p in log.case_dir.rglob("*") if p.is_file()]
    assert len(files) > 10
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(0o600)}
    assert not [p for p in files if p.name.endswith(".tmp")]


def test_default_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OR_ASSIST_CASES", str(tmp_path / "mine"))
    assert default_cases_root() == tmp_path / "mine"
    assert list_cases() == []
    with CaseLog.create(started=T0) as log:
        assert log.case_dir.parent == tmp_path / "mine"
    assert [c["case_id"] for c in list_cases()] == [log.case_dir.name]
    monkeypatch.delenv("OR_ASSIST_CASES")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_cases_root() == tmp_path / "xdg" / "or_assist" / "cases"


# --------------------------------------------------------------------------- crash


_WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from or_assist.session.caselog import CaseLog
    log = CaseLog.create(sys.argv[1], patient_label="crash test")
    print("CASE", log.case_dir, flush=True)
    rng = np.random.default_rng(0)
    i = 0
    while True:
        i += 1
        frame = rng.integers(0, 256, (240, 320), dtype=np.uint8)
        sid = log.log_shot(frame, preprocessed=frame[10:230, 10:310], implant_id="L1", view="inlet",
                           registration={"schema": "or_assist.registration/1", "success": True, "seconds": 0.5})
        cid = log.log_capture(sid, np.dstack([frame] * 3), {"deviation_2d": {"tip_offset_mm": float(i)}},
                              {"level": "green", "lines": ["ok"]})
        log.log_event("shot_done", {"i": i})
        print("SHOT", sid, cid, int(frame.sum(dtype=np.int64)), time.monotonic(), flush=True)
""")

_PHASES = (0.2, 0.5, 0.8)  # where in a writer's shot cycle its SIGKILL lands


def _check_after_crash(case_dir: Path, committed: list[tuple]) -> None:
    # read as found (read-only, before any recovery by a writer)
    with CaseLog.open(case_dir, readonly=True) as log:
        shots = {s["id"]: s for s in log.shots()}
        caps = {c["id"]: c for c in log.captures()}
        assert not [p for p in log.problems if "missing" in p]
        assert any("interrupted" in p for p in log.problems)
        for sid, cid, total in committed:
            frame = log.read_image(shots[sid]["raw_path"], shots[sid]["raw_sha256"])
            assert int(frame.sum(dtype=np.int64)) == total
            log.read_image(shots[sid]["pre_path"], shots[sid]["pre_sha256"])
            assert caps[cid]["shot_id"] == sid
            log.read_image(caps[cid]["overlay_path"], caps[cid]["overlay_sha256"])
        # at most the shot in progress is lost, and every stored row is complete
        assert len(shots) - len(committed) in (0, 1)
        for s in shots.values():
            log.read_image(s["raw_path"], s["raw_sha256"])
            log.read_image(s["pre_path"], s["pre_sha256"])
        for c in caps.values():
            log.read_image(c["overlay_path"], c["overlay_sha256"])
    # the case can be continued after the crash
    with CaseLog.open(case_dir) as log:
        assert log.log_shot(make_frame(9)[0]) == max(shots) + 1
    with CaseLog.open(case_dir, readonly=True) as log:
        assert log.case_summary()["ended"] is not None and log.problems == []


def test_sigkill_mid_case_loses_nothing_committed(tmp_path):
    """Three writers, each killed at a different point of its shot cycle (estimated from
    the monotonic times it prints after each commit)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    errs = [open(tmp_path / f"stderr{k}.txt", "w+") for k in range(len(_PHASES))]
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path / f"w{k}")], stdout=subprocess.PIPE,
                              stderr=err, text=True, env=env) for k, err in enumerate(errs)]
    runs = []
    try:
        for proc, phase, err in zip(procs, _PHASES, errs):
            first = proc.stdout.readline()
            assert first.startswith("CASE "), first + Path(err.name).read_text()
            committed, times = [], []
            while len(committed) < 6:
                line = proc.stdout.readline()
                assert line.startswith("SHOT "), line + Path(err.name).read_text()
                committed.append(tuple(int(v) for v in line.split()[1:4]))
                times.append(float(line.split()[4]))
            period = float(np.median(np.diff(times)))
            time.sleep((phase * period - (time.monotonic() - times[-1])) % period)
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
            rest = proc.stdout.read()  # the lines printed (committed) before the kill
            committed += [tuple(int(v) for v in ln.split()[1:4]) for ln in rest.splitlines() if ln.startswith("SHOT ")]
            runs.append((Path(first.split(" ", 1)[1].strip()), committed))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        for err in errs:
            err.close()
    for case_dir, committed in runs:
        _check_after_crash(case_dir, committed)


# --------------------------------------------------------------------------- schema versions


def _v1_case(tmp_path) -> Path:
    """A case as or_assist with schema 1 wrote it: the v1 DDL, one shot and one capture."""
    case_dir = tmp_path / "20200101T000000_aaaaaa"
    (case_dir / "images").mkdir(parents=True)
    frame, _ = make_frame(3)
    cv2.imwrite(str(case_dir / "images" / "shot_000001_raw.png"), frame)
    cv2.imwrite(str(case_dir / "images" / "capture_000001.png"), overlay_of(frame))
    conn = sqlite3.connect(case_dir / CASE_DB, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    schema.create_schema(conn, case_dir, version=1)
    conn.execute("INSERT INTO case_info (id, case_id, started, ended, app_version) VALUES "
                 "(1, '20200101T000000_aaaaaa', 1577836800, 1577837400, '0.0.9')")
    conn.execute("INSERT INTO shots (id, timestamp, raw_path, registration_json, implant_id, view) VALUES "
                 "(1, 1577836810, 'images/shot_000001_raw.png', ?, 'L1', 'inlet')",
                 (json.dumps(registration(True, 1.5)),))
    conn.execute("INSERT INTO captures (id, shot_id, timestamp, overlay_path, deviations_json, cue_json) VALUES "
                 "(1, 1, 1577836820, 'images/capture_000001.png', '{\"deviation_2d\": {\"angle_deg\": 3.0}}', NULL)")
    conn.close()
    return case_dir


def _stored_version(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT version FROM schema_version").fetchone()[0]
    finally:
        conn.close()


def test_v1_case_is_migrated_with_a_backup(tmp_path):
    case_dir = _v1_case(tmp_path)
    with CaseLog.open(case_dir, readonly=True) as log:  # read-only: read as it is, not migrated
        assert log.schema_version == 1 and log.shots()[0]["raw_sha256"] is None
    assert _stored_version(case_dir / CASE_DB) == 1
    with CaseLog.open(case_dir) as log:
        assert (log.migrated_from, log.schema_version) == (1, schema.SCHEMA_VERSION)
        shot = log.shots()[0]
        assert shot["guidance"] == {}  # shots of older cases carry no per-shot deviations
        assert shot["raw_sha256"] == _sha(case_dir / "images" / "shot_000001_raw.png")
        assert log.captures()[0]["overlay_sha256"] == _sha(case_dir / "images" / "capture_000001.png")
        assert log.captures()[0]["deviations"] == {"deviation_2d": {"angle_deg": 3.0}}
        assert log.log_shot(make_frame(1)[0], guidance={"deviation_3d": None}) == 2  # writable at the new version
        assert log.shots()[1]["guidance"] == {"deviation_3d": None}
    assert _stored_version(case_dir / CASE_DB) == schema.SCHEMA_VERSION
    backup = case_dir / f"{CASE_DB}.v1.bak"
    assert _stored_version(backup) == 1
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600


def test_newer_schema_is_refused_and_left_untouched(tmp_path):
    log, _ = record_case(tmp_path)
    conn = sqlite3.connect(log.case_dir / CASE_DB)
    conn.execute("UPDATE schema_version SET version = 7")
    conn.commit()
    conn.close()
    before = _tree_hashes(log.case_dir)
    for readonly in (True, False):
        with pytest.raises(InputError) as err:
            CaseLog.open(log.case_dir, readonly=readonly)
        msg = str(err.value)
        assert str(log.case_dir) in msg and "schema version 7" in msg and f"version {schema.SCHEMA_VERSION}" in msg
        assert "newer" in msg
    after = {k: v for k, v in _tree_hashes(log.case_dir).items() if not k.endswith(("-shm", "-wal"))}
    assert after == {k: v for k, v in before.items() if not k.endswith(("-shm", "-wal"))}
    listed = list_cases(tmp_path)
    assert len(listed) == 1 and "newer" in listed[0]["error"]


# --------------------------------------------------------------------------- damaged cases


def test_not_a_case_folder(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        CaseLog.open(tmp_path / "nowhere")
    with pytest.raises(InputError, match=f"{CASE_DB} is missing"):
        CaseLog.open(tmp_path)


def test_empty_database_is_a_half_written_case(tmp_path):
    (tmp_path / CASE_DB).write_bytes(b"")
    with pytest.raises(InputError, match="half-written") as err:
        CaseLog.open(tmp_path)
    assert CASE_DB in str(err.value)


def test_garbage_database(tmp_path):
    (tmp_path / CASE_DB).write_bytes(b"this is not a database" * 100)
    with pytest.raises(InputError, match="not a readable SQLite database") as err:
        CaseLog.open(tmp_path)
    assert str(tmp_path / CASE_DB) in str(err.value)


def test_truncated_database(tmp_path):
    log, _ = record_case(tmp_path)
    db = log.case_dir / CASE_DB
    data = db.read_bytes()
    assert len(data) > 8192
    db.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as err:
        CaseLog.open(log.case_dir, readonly=True)
    assert str(db) in str(err.value)
    assert len(db.read_bytes()) == len(data) // 2  # nothing was changed


def test_sqlite_file_that_is_not_a_case(tmp_path):
    conn = sqlite3.connect(tmp_path / CASE_DB)
    conn.execute("CREATE TABLE other (x)")
    conn.commit()
    conn.close()
    with pytest.raises(InputError, match="not a case database"):
        CaseLog.open(tmp_path)


def test_missing_and_damaged_images_are_reported_not_dropped(tmp_path):
    log, _ = record_case(tmp_path)
    raw2 = log.case_dir / "images" / "shot_000002_raw.png"
    overlay = log.case_dir / "images" / "capture_000002.png"
    raw2.unlink()
    data = bytearray(overlay.read_bytes())
    data[len(data) // 2] ^= 0xFF
    overlay.write_bytes(bytes(data))
    with CaseLog.open(log.case_dir, readonly=True) as log2:
        assert log2.problems == [f"shot 2: image file missing: {raw2}"]
        shots = log2.shots()
        assert [s["id"] for s in shots] == [1, 2, 3, 4] and shots[1]["missing"] == [str(raw2)]
        with pytest.raises(InputError, match="image file missing") as err:
            log2.read_image(shots[1]["raw_path"], shots[1]["raw_sha256"])
        assert str(raw2) in str(err.value)
        cap = log2.captures()[1]
        with pytest.raises(InputError, match="SHA-256 differs") as err:
            log2.read_image(cap["overlay_path"], cap["overlay_sha256"])
        assert str(overlay) in str(err.value)


def test_list_cases_shows_good_bad_and_interrupted(tmp_path):
    good, _ = record_case(tmp_path)
    open_log, _ = record_case(tmp_path, close=False)
    bad = tmp_path / "20990101T000000_broken"
    bad.mkdir()
    (bad / CASE_DB).write_bytes(b"")
    (tmp_path / "unrelated").mkdir()
    listed = {Path(c["folder"]).name: c for c in list_cases(tmp_path)}
    assert set(listed) == {good.case_dir.name, open_log.case_dir.name, bad.name}
    assert listed[good.case_dir.name]["status"] == "closed"
    assert listed[good.case_dir.name]["n_shots"] == 4 and "plan" not in listed[good.case_dir.name]
    assert listed[open_log.case_dir.name]["status"] == "open or interrupted"
    assert "half-written" in listed[bad.name]["error"]
    # a temporary file an interrupted write could not remove is named, not hidden
    (good.case_dir / "images" / ".shot_0002.png.4242.tmp").write_bytes(b"\x89PNG")
    status = {Path(c["folder"]).name: c for c in list_cases(tmp_path)}[good.case_dir.name]["status"]
    assert status.startswith("closed; 1 partial file(s) left") and "images/.shot_0002.png.4242.tmp" in status
    open_log.close()
    with pytest.raises(InputError, match="not a folder of cases"):
        list_cases(tmp_path / "missing")


# --------------------------------------------------------------------------- bad arguments


@pytest.fixture()
def open_log(tmp_path):
    log = CaseLog.create(tmp_path, started=T0)
    yield log
    log.close()


@pytest.mark.parametrize("frame, match", [
    (np.zeros((10, 10), np.float32), "dtype uint8 or uint16"),
    (np.zeros((10, 10, 4), np.uint8), r"shape \(H, W\) or \(H, W, 3\)"),
    (np.zeros((0, 10), np.uint8), "empty image"),
    ([[1, 2], [3, 4]], "numpy image array"),
])
def test_bad_frame(open_log, frame, match):
    with pytest.raises(InputError, match=match) as err:
        open_log.log_shot(frame)
    assert str(err.value).startswith("frame:")


def test_bad_shot_arguments(open_log):
    frame = np.zeros((20, 30), np.uint8)
    with pytest.raises(InputError, match=r"text_mask: expected shape \(20, 30\)"):
        open_log.log_shot(frame, text_mask=np.zeros((30, 20), bool))
    with pytest.raises(InputError, match="text_mask: expected a bool"):
        open_log.log_shot(frame, text_mask=np.full((20, 30), 7, np.uint8))
    with pytest.raises(InputError, match="preprocessed_text_mask: given without a preprocessed frame"):
        open_log.log_shot(frame, preprocessed_text_mask=np.zeros((20, 30), bool))
    with pytest.raises(InputError, match="timestamp: .*monotonic"):
        open_log.log_shot(frame, timestamp=12345.6)
    with pytest.raises(InputError, match="timestamp: expected wall-clock"):
        open_log.log_shot(frame, timestamp=float("nan"))
    with pytest.raises(InputError, match="registration: expected a dict"):
        open_log.log_shot(frame, registration=[1, 2])
    with pytest.raises(InputError, match="registration: cannot be stored as JSON"):
        open_log.log_shot(frame, registration={"x": object()})
    with pytest.raises(InputError, match="implant_id: expected a string"):
        open_log.log_shot(frame, implant_id=3)
    with pytest.raises(InputError, match="guidance: expected a dict"):
        open_log.log_shot(frame, guidance=[1, 2])
    assert open_log.shots() == []  # nothing half-stored


def test_bad_capture_and_event_arguments(open_log):
    frame = np.zeros((20, 30), np.uint8)
    sid = open_log.log_shot(frame)
    with pytest.raises(InputError, match="shot_id: no shot 99"):
        open_log.log_capture(99, frame, {})
    with pytest.raises(InputError, match="shot_id: expected an integer"):
        open_log.log_capture("1", frame, {})
    with pytest.raises(InputError, match="deviations: expected a dict"):
        open_log.log_capture(sid, frame, 3.0)
    with pytest.raises(InputError, match="kind: expected a non-empty string"):
        open_log.log_event("  ")
    assert open_log.captures() == [] and open_log.events() == []


def test_read_only_and_closed_logs_refuse_writes(tmp_path):
    log, _ = record_case(tmp_path)
    with CaseLog.open(log.case_dir, readonly=True) as ro:
        with pytest.raises(InputError, match="opened read-only"):
            ro.log_event("note")
    with pytest.raises(InputError, match="closed"):
        log.log_event("note")
    with pytest.raises(InputError, match="exists and is not a folder"):
        CaseLog.create(log.case_dir / CASE_DB, started=T0)


# --------------------------------------------------------------------------- export


def _text_box(mask: np.ndarray) -> tuple[slice, slice]:
    ys, xs = np.nonzero(mask)
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)


def test_export_masks_text_and_pseudonymises(recorded, tmp_path):
    case_dir, written = recorded
    doc = json.loads(export_case(case_dir, tmp_path / "anon", pseudonymise=True).read_text())
    assert doc["schema"] == "or_assist.case_export/1" and doc["pseudonymised"] and doc["text_masked"]
    text = json.dumps(doc)
    for secret in (PATIENT, "DOE", OPERATOR, case_dir.name, str(case_dir), "2023", str(int(T0))):
        assert secret not in text
    assert doc["case"]["duration_s"] == 600
    assert [s["t_s"] for s in doc["shots"]] == [5, 65, 125, 185]
    assert [e["detail"] for e in doc["events"]] == [{"implant": "L2"}, {}]
    assert stat.S_IMODE((tmp_path / "anon").stat().st_mode) == 0o700
    for s in doc["shots"]:
        img = cv2.imread(str(tmp_path / "anon" / s["image"]), cv2.IMREAD_UNCHANGED)
        frame, mask = written["frames"][s["id"]], written["masks"][s["id"]]
        rows, cols = _text_box(mask)
        assert np.all(img[rows, cols] == 0)                        # the whole text box, not just glyphs
        far = np.ones_like(mask)
        far[: rows.stop + 10, : cols.stop + 10] = False
        assert np.array_equal(img[far], frame[far])                 # the rest untouched
        assert s["image_text"] == "text masked (recorded mask)"
    for c in doc["captures"]:                                       # overlays use the shot's mask
        img = cv2.imread(str(tmp_path / "anon" / c["image"]))
        rows, cols = _text_box(written["masks"][c["shot_id"]])
        assert np.all(img[rows, cols] == 0) and c["image_text"] == "text masked (recorded mask)"


def test_export_unmasked_and_with_metadata(recorded, tmp_path):
    case_dir, written = recorded
    doc = json.loads(export_case(case_dir, tmp_path / "full", mask_text=False).read_text())
    assert doc["case"]["patient_label"] == PATIENT and doc["shots"][0]["timestamp"] == T0 + 5
    assert all(s["guidance"] == {} for s in doc["shots"])  # recorded without per-shot deviations
    img = cv2.imread(str(tmp_path / "full" / doc["shots"][0]["image"]), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(img, written["frames"][1])
    with pytest.raises(InputError, match="not an empty folder"):
        export_case(case_dir, tmp_path / "full")


def test_export_detects_text_when_no_mask_was_recorded(tmp_path):
    log, written = record_case(tmp_path / "c", with_masks=False)
    doc = json.loads(export_case(log.case_dir, tmp_path / "out").read_text())
    s = doc["shots"][0]
    assert s["image_text"] == "text masked (detected)"
    img = cv2.imread(str(tmp_path / "out" / s["image"]), cv2.IMREAD_UNCHANGED)
    text_pixels = written["masks"][1] & (written["frames"][1] == 255)
    assert text_pixels.sum() > 50 and np.all(img[text_pixels] == 0)


def test_export_of_a_case_with_a_missing_image(tmp_path):
    log, _ = record_case(tmp_path / "c")
    (log.case_dir / "images" / "capture_000001.png").unlink()
    doc = json.loads(export_case(log.case_dir, tmp_path / "out").read_text())
    assert doc["captures"][0]["image"] is None and doc["captures"][1]["image"] is not None
    assert any("capture_000001.png" in p for p in doc["case"]["problems"])


def test_apply_text_mask_covers_boxes():
    img = np.full((100, 200), 128, np.uint8)
    mask = np.zeros((100, 200), bool)
    mask[10:14, 20:24] = mask[10:14, 30:34] = True     # two letters of one word
    out = apply_text_mask(img, mask)
    assert np.all(out[10:14, 20:34] == 0)              # the gap between letters too
    assert out[60, 100] == 128 and img[10, 20] == 128  # the input is not changed
