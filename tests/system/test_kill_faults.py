"""SIGKILL at chosen points: what was committed survives, and nothing half-written is taken for whole.

Real processes, really killed: ``or-assist demo --headless`` after its first committed
shot, and ``or-assist sample`` while it writes. After each kill the case can be read,
is listed as open or interrupted (not as a normally closed case), its report is written,
and a rerun of the interrupted command succeeds.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from or_assist.cli import main
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

REPO = REPO_ROOT


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen",
            "PYTHONUNBUFFERED": "1"}


def _committed_shots(cases: Path) -> int:
    for db in cases.glob("*/case.sqlite"):
        try:
            with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0) as conn:
                return int(conn.execute("SELECT COUNT(*) FROM shots").fetchone()[0])
        except sqlite3.Error:
            return 0
    return 0


def _kill_when(proc: subprocess.Popen, ready, limit_s: float = 240.0) -> None:
    t0 = time.monotonic()
    while not ready():
        assert proc.poll() is None, f"ended before the kill point (exit {proc.returncode})"
        assert time.monotonic() - t0 < limit_s, "the kill point was never reached"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_case_killed_after_its_first_shot_keeps_it_and_reads_as_interrupted(tmp_path, capsys):
    cases = tmp_path / "cases"
    proc = subprocess.Popen([sys.executable, "-m", "or_assist.cli", "demo", "--headless", "--max-shots", "50",
                             "--cases", str(cases)], cwd=REPO, env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(proc, lambda: _committed_shots(cases) >= 1)
    shots = _committed_shots(cases)
    assert shots >= 1
    (case_dir,) = [p for p in cases.iterdir() if p.is_dir()]

    assert main(["cases", "--root", str(cases)]) == 0
    listing = capsys.readouterr().out
    assert case_dir.name in listing and "interrupted" in listing and "closed" not in listing

    report = tmp_path / "report.html"
    assert main(["report", str(case_dir), "--out", str(report)]) == 0
    html = report.read_text()
    assert "interrupted" in html
    from or_assist.session.caselog import CaseLog

    with CaseLog.open(case_dir, readonly=True) as log:
        assert len(log.shots()) == shots          # every committed shot is there
        assert log.check_files() == []            # and its images with it


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kill_at", ["0.3 s", "1.0 s", "first file"])
def test_sample_killed_while_writing_then_rerun_gives_whole_files(tmp_path, capsys, kill_at):
    out = tmp_path / "sample"
    proc = subprocess.Popen([sys.executable, "-m", "or_assist.cli", "sample", "--out", str(out)], cwd=REPO,
                            env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    if kill_at == "first file":
        _kill_when(proc, lambda: out.is_dir() and any(out.iterdir()))
    else:
        _kill_when(proc, lambda: time.monotonic() - t0 >= float(kill_at.split()[0]))
    # Whatever the kill left, a rerun gives a CT and plan that load and agree.
    assert main(["sample", "--out", str(out)]) == 0
    capsys.readouterr()
    from or_assist.core.ct.load import load_ct
    from or_assist.core.plan import load_plan

    plan = load_plan(out / "sample_plan.json")
    ct = load_ct(out / "phantom_pelvis_ct.nii.gz")
    assert ct.voxel_sha256() == plan.ct_sha256
