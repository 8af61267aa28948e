"""Sources that cannot be opened, and secrets, through the real ``or-assist run`` CLI.

Every run is a subprocess with a hard timeout, so a hang fails the test instead of
hanging it; the sources are real (an empty folder, undecodable files, a 0-byte and a
garbage MP4, a TCP port nobody listens on, a local MJPEG server), the case logs real
SQLite files under a temporary ``--cases`` folder, the settings a temporary
``$OR_ASSIST_CONFIG_DIR``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from or_assist.app.settings import AppSettings, load_settings, save_settings
from or_assist.sim.sample import build_sample_data
from or_assist.session.caselog import CaseLog
from or_assist.video.credentials import (PASSWORD_ENV, has_password, mask_credentials, strip_password,
                                         with_password)
from tests.video.mjpeg_server import MjpegServer, closed_port
from tests.conftest import REPO_ROOT

REPO = REPO_ROOT
HARD_TIMEOUT_S = 240  # a run that hangs fails here; the runs below need a few seconds


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return build_sample_data(tmp_path_factory.mktemp("sample"))


def _env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OR_ASSIST_CONFIG_DIR"] = str(tmp_path / "config")
    env.update(extra)
    return env


def run_cli(sample, tmp_path: Path, source: str, *extra: str, env_extra=None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "or_assist.cli", "run", "--headless", "--plan", str(sample["plan"]),
            "--geometry", str(sample["geometry"]), "--source", source, "--cases", str(tmp_path / "cases"), *extra]
    return subprocess.run(argv, cwd=tmp_path, env=_env(tmp_path, **(env_extra or {})), capture_output=True,
                          text=True, timeout=HARD_TIMEOUT_S)


def _cases(tmp_path: Path) -> list[Path]:
    root = tmp_path / "cases"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("or-assist: error: "), proc.stderr
    return lines[0]


def _undecodable_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "undecodable"
    folder.mkdir()
    (folder / "shot_001.png").write_text("not a PNG at all\n")
    # A JPEG start marker, then nothing libjpeg can use. (Random bytes would do too, but
    # libjpeg then sometimes prints its own "Corrupt JPEG data" line on stderr.)
    (folder / "shot_002.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(2000))
    (folder / "shot_003.png").write_bytes(b"")
    return folder


def _make(kind: str, tmp_path: Path) -> tuple[Path, str]:
    """A recording that holds no decodable frame, and a word its error must contain."""
    if kind == "empty folder":
        path = tmp_path / "empty"
        path.mkdir()
        return path, "no images"
    if kind == "undecodable files":
        return _undecodable_folder(tmp_path), "none of the 3 files decodes"
    if kind == "0-byte mp4":
        path = tmp_path / "zero.mp4"
        path.write_bytes(b"")
        return path, "not a video file"
    path = tmp_path / "garbage.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 80)  # an MP4 header, no moov atom
    return path, "not a video file"


@pytest.mark.parametrize("kind", ["empty folder", "undecodable files", "0-byte mp4", "garbage mp4"])
def test_recording_without_a_frame_fails_at_once_with_one_line_and_no_case(sample, tmp_path, kind):
    path, why = _make(kind, tmp_path)
    # The timeout is far above what these need: certain failures must not wait for it.
    proc = run_cli(sample, tmp_path, str(path), "--source-timeout", "100")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    line = _one_error_line(proc)
    assert path.name in line and why in line, line
    assert "Traceback" not in proc.stderr + proc.stdout
    assert _cases(tmp_path) == []                          # no case for a source that cannot play
    assert not (tmp_path / "config" / "settings.json").exists()  # and it is not remembered


def test_unreachable_stream_reports_no_signal_then_gives_up_and_records_interrupted(sample, tmp_path):
    port = closed_port()
    url = f"rtsp://user:pass@127.0.0.1:{port}/x"
    masked = f"rtsp://user:***@127.0.0.1:{port}/x"
    proc = run_cli(sample, tmp_path, url, "--source-timeout", "3", "--no-signal-report", "0.5")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    line = _one_error_line(proc)
    assert masked in line and "gave up" in line and "3 s" in line, line
    assert "pass" not in proc.stderr and "pass" not in proc.stdout
    retrying = [s for s in proc.stdout.splitlines() if s.startswith(f"no signal from {masked} for")
                and s.endswith("retrying")]
    assert len(retrying) >= 2, proc.stdout

    cases = _cases(tmp_path)
    assert len(cases) == 1
    with CaseLog.open(cases[0], readonly=True) as log:
        summary = log.case_summary()
        events = log.events()
    assert summary["ended"] is not None and summary["n_shots"] == 0      # closed, not left open
    interrupted = [e for e in events if e["kind"] == "interrupted"]
    assert len(interrupted) == 1
    reason = interrupted[0]["detail"]["reason"]
    assert masked in reason and "no frame" in reason and "pass" not in reason
    for f in cases[0].rglob("*"):
        if f.is_file():
            assert b":pass@" not in f.read_bytes(), f
    assert not (tmp_path / "config" / "settings.json").exists()


def test_source_without_scheme_is_masked_in_the_error(sample, tmp_path):
    proc = run_cli(sample, tmp_path, "user:pass@host/stream")
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert "user:***@host/stream" in line and "needs its scheme" in line
    assert "pass" not in proc.stderr + proc.stdout


def test_source_timeout_is_checked(sample, tmp_path):
    for bad in ("0", "-1", "nan", "inf"):
        proc = run_cli(sample, tmp_path, "0", "--source-timeout", bad)
        assert proc.returncode == 2 and "--source-timeout" in _one_error_line(proc), (bad, proc.stderr)


def test_time_budget_is_checked(sample, tmp_path):
    for bad in ("-1", "nan", "4000"):
        proc = run_cli(sample, tmp_path, "0", "--time-budget-s", bad)
        assert proc.returncode == 2 and "--time-budget-s" in _one_error_line(proc), (bad, proc.stderr)


def test_password_bearing_stream_runs_and_its_password_is_stored_nowhere(sample, tmp_path):
    secret = "s3cr3tPW"
    with MjpegServer(fps=25.0, size=(160, 120), lifetime_s=60.0) as server:
        url = server.url.replace("http://", f"http://user:{secret}@")
        proc = run_cli(sample, tmp_path, url, "--duration", "2", "--source-timeout", "20", "--time-budget-s", "7")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert secret not in proc.stdout + proc.stderr
    frames = int(proc.stdout.strip().splitlines()[-1].split(" frames,")[0])
    assert frames > 0                                   # the stream played, password and all

    config = tmp_path / "config"
    settings_file = config / "settings.json"
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o700
    assert secret.encode() not in settings_file.read_bytes()
    saved = json.loads(settings_file.read_text())["last_source"]
    assert saved == server.url.replace("http://", "http://user@")
    assert json.loads(settings_file.read_text())["time_budget_s"] == 7.0   # the budget is remembered

    (case,) = _cases(tmp_path)
    assert stat.S_IMODE(case.stat().st_mode) == 0o700
    for f in case.rglob("*"):
        assert stat.S_IMODE(f.stat().st_mode) == (0o700 if f.is_dir() else 0o600), f
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


# --------------------------------------------------------------------------- settings file


def test_settings_are_private_whatever_the_umask_and_keep_no_password(tmp_path):
    config = tmp_path / "cfg"
    config.mkdir(mode=0o755)
    os.chmod(config, 0o755)                     # an older, world-readable folder
    path = config / "settings.json"
    old = os.umask(0)
    try:
        save_settings(AppSettings(last_source="rtsp://admin:pass@10.0.0.5:554/stream1"), path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o700
    assert b"pass" not in path.read_bytes()
    assert [p.name for p in config.iterdir()] == ["settings.json"]   # no temporary file left
    settings, warning = load_settings(path)
    assert warning is None and settings.last_source == "rtsp://admin@10.0.0.5:554/stream1"

    fresh = tmp_path / "new" / "or_assist" / "settings.json"
    save_settings(AppSettings(last_source="admin:pass@cam/stream"), fresh)
    assert stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700
    assert b"pass" not in fresh.read_bytes()


def test_a_password_left_in_an_old_settings_file_is_warned_about_and_dropped(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"schema": "or_assist.app_settings/1",
                                "last_source": "rtsp://admin:hunter2@cam/s"}))
    settings, warning = load_settings(path)
    assert "password in clear" in warning and "hunter2" not in warning
    save_settings(settings, path)
    assert b"hunter2" not in path.read_bytes()


def test_settings_timeouts_are_checked(tmp_path):
    assert AppSettings().source_timeout_s == 30.0
    for bad in (0, -1, float("nan"), float("inf"), True, "5"):
        with pytest.raises(Exception, match="source_timeout_s"):
            AppSettings(source_timeout_s=bad)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"schema": "or_assist.app_settings/1", "no_signal_report_s": -2}))
    settings, warning = load_settings(path)
    assert settings == AppSettings() and "no_signal_report_s" in warning


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize("text, masked", [
    ("rtsp://admin:secret@10.0.0.5:554/stream1", "rtsp://admin:***@10.0.0.5:554/stream1"),
    ("user:pass@host/stream", "user:***@host/stream"),
    ("rtsp://:pw@h/x", "rtsp://:***@h/x"),
    ("rtsp://u:p@ss@h/x", "rtsp://u:***@h/x"),
    ("cannot open 'user:pass@host/s': refused; rtsp://a:b@c/d too",
     "cannot open 'user:***@host/s': refused; rtsp://a:***@c/d too"),
    ("rtsp://user@h/x", "rtsp://user@h/x"),
    ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/a"),
    ("/data/shots@2x/frame.png", "/data/shots@2x/frame.png"),
])
def test_mask_credentials(text, masked):
    assert mask_credentials(text) == masked


def test_strip_and_fill_in_the_password():
    assert strip_password("rtsp://user:pass@127.0.0.1:9/x") == "rtsp://user@127.0.0.1:9/x"
    assert strip_password("user:pass@host/stream") == "user@host/stream"
    assert strip_password("/dev/video0") == "/dev/video0" and strip_password(None) is None
    assert has_password("rtsp://u:p@h/x") and not has_password("rtsp://u@h/x")
    env = {PASSWORD_ENV: "p@ss/word"}
    assert with_password("rtsp://user@h:554/x", env) == "rtsp://user:p%40ss%2Fword@h:554/x"
    assert with_password("rtsp://h/x", env) == "rtsp://h/x"                 # no user: nothing to fill in
    assert with_password("rtsp://u:given@h/x", env) == "rtsp://u:given@h/x"  # a given password wins
    assert with_password("rtsp://user@h/x", {}) == "rtsp://user@h/x"
