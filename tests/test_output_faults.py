"""Outputs that cannot be written, with real operating-system faults.

* a read-only file system: a private mount namespace (``unshare -rm``) in which a test
  folder is bind-mounted read-only, so writes fail with EROFS also for root (permission
  bits do not stop root);
* a full disk: ``RLIMIT_FSIZE`` in the child with SIGXFSZ ignored, so a write past the
  limit fails with EFBIG as it would with ENOSPC;
* an output under a regular file, or a file path that is a folder.

Each command must stop with exit 2 and one line naming the path, before any long work,
and leave no partial or temporary file; a live case that hits the fault is listed as
interrupted with the reason.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from or_assist.cli import main
from or_assist.core.outputs import check_output_dir, check_output_file, write_bytes_atomic, write_image
from or_assist.errors import InputError

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300


def _unshare_works() -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount --bind -o ro / / 2>/dev/null || mount -t tmpfs x /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


UNSHARE = _unshare_works()
needs_unshare = pytest.mark.skipif(not UNSHARE, reason="needs unshare -rm (user and mount namespaces)")


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen", "PYTHONUNBUFFERED": "1"}


def run_read_only(read_only: Path, argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``or-assist ARGV`` where ``read_only`` is a read-only mount (EROFS on every write)."""
    script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, str(read_only), sys.executable, "-m",
                           "or_assist.cli", *argv], capture_output=True, text=True, cwd=REPO,
                          env=_env(tmp_path), timeout=TIMEOUT_S)


def run_disk_full(limit_bytes: int, argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``or-assist ARGV`` with files limited to ``limit_bytes`` (a full disk for anything larger)."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "or_assist.cli", *argv], capture_output=True, text=True,
                          cwd=REPO, env=_env(tmp_path), timeout=TIMEOUT_S, preexec_fn=limit)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], proc.stderr[-1000:])
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("or-assist: error: "), lines
    return lines[0]


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name or p.name.startswith(".or_assist_write_check_")]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from or_assist.core.carm_profiles import load_profile
    from or_assist.core.geometry import save_geometry
    from or_assist.core.plan import load_plan
    from or_assist.core.plan_views import plan_view_pose
    from or_assist.core.geometry import save_pose
    from or_assist.sample import build_sample_data

    root = tmp_path_factory.mktemp("outputs")
    paths = {k: Path(v) for k, v in build_sample_data(root / "sample").items()}
    paths["g128"] = root / "g128.json"
    save_geometry(load_profile("siemens_cios_fusion").geometry_at(128), paths["g128"])
    plan = load_plan(paths["plan"])
    paths["implant"] = plan.implants[0].id
    paths["pose"] = root / "pose.json"
    save_pose(plan_view_pose(plan, plan.implants[0].id, "lateral", geometry_path=paths["g128"]), paths["pose"])
    os.chmod(root, 0o755)
    return paths


# ----------------------------------------------------------------------------- the checks themselves


def test_checks_name_the_path_and_what_is_wrong(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(InputError, match="is a folder; expected the path of the result"):
        check_output_file(tmp_path, "--out", "the result")
    with pytest.raises(InputError, match="a_file is a file, not a folder"):
        check_output_file(a_file / "sub" / "r.json", "--out")
    with pytest.raises(InputError, match="is a file; expected the output folder"):
        check_output_dir(a_file, "--out")
    assert check_output_file(tmp_path / "new" / "deeper" / "r.json") == tmp_path / "new" / "deeper" / "r.json"
    assert not (tmp_path / "new").exists()            # checking creates nothing
    assert check_output_dir(tmp_path / "lib") == tmp_path / "lib"
    assert leftovers(tmp_path) == []


@needs_unshare
def test_read_only_file_system_is_refused_before_any_work(sample, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    cases = [
        ["register", "--ct", str(sample["ct"]), "--geometry", str(sample["g128"]), "--image", str(sample["ct"]),
         "--init", str(sample["pose"]), "--out", str(ro / "r.json")],
        ["simulate", str(sample["ct"]), "--pose", str(sample["pose"]), "--geometry", str(sample["g128"]),
         "--out", str(ro / "s.png")],
        ["views", str(sample["plan"]), "--geometry", str(sample["g128"]), "--out", str(ro / "lib")],
        ["sample", "--out", str(ro / "sample")],
        ["geometry", "siemens_cios_fusion", "--out", str(ro / "g.json")],
        ["demo", "--headless", "--max-shots", "1", "--cases", str(ro / "cases")],
    ]
    for argv in cases:
        proc = run_read_only(ro, argv, tmp_path)
        line = one_error_line(proc)
        assert "read-only" in line and str(ro) in line, line
        assert proc.stdout.strip() == "", (argv[0], proc.stdout)    # nothing was computed first
    assert list(ro.iterdir()) == []


@needs_unshare
def test_images_folder_read_only_mid_case_interrupts_the_case(tmp_path, capsys):
    """The case's image folder turns read-only after the first shot: exit 2, one line, interrupted."""
    cases = tmp_path / "cases"
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import subprocess, sys, time
        from pathlib import Path
        cases = Path({str(cases)!r})
        p = subprocess.Popen([sys.executable, "-m", "or_assist.cli", "demo", "--headless", "--max-shots", "6",
                              "--cases", str(cases)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        t0 = time.monotonic()
        while not list(cases.glob("*/images/*.png")):
            if p.poll() is not None or time.monotonic() - t0 > 240:
                sys.exit("no shot image appeared")
            time.sleep(0.05)
        images = next(cases.glob("*/images"))
        subprocess.run(["mount", "--bind", "-o", "ro", str(images), str(images)], check=True)
        err = p.communicate()[1]
        sys.stderr.write(err)
        sys.exit(p.returncode)
    """))
    proc = subprocess.run(["unshare", "-rm", sys.executable, str(driver)], capture_output=True, text=True,
                          cwd=REPO, env=_env(tmp_path), timeout=TIMEOUT_S)
    line = one_error_line(proc)
    assert "read-only" in line and "images" in line, line
    (case_dir,) = [p for p in cases.iterdir() if p.is_dir()]
    assert leftovers(case_dir) == []
    assert main(["cases", "--root", str(cases)]) == 0
    listing = capsys.readouterr().out
    assert "interrupted: " in listing and "read-only" in listing, listing


def test_disk_full_while_writing_leaves_no_partial_file(sample, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = run_disk_full(32 * 1024, ["simulate", str(sample["ct"]), "--pose", str(sample["pose"]), "--geometry",
                                     str(sample["geometry"]), "--frame", "1024x1024", "--out", str(out / "s.png")],
                         tmp_path)
    line = one_error_line(proc)
    assert str(out / "s.png") in line and ("disk is full" in line or "too large" in line), line
    assert list(out.iterdir()) == []                   # neither the PNG nor a temporary file


def test_disk_full_during_a_case_interrupts_it(tmp_path, capsys):
    cases = tmp_path / "cases"
    proc = run_disk_full(256 * 1024, ["demo", "--headless", "--max-shots", "3", "--cases", str(cases)], tmp_path)
    line = one_error_line(proc)
    assert "could not write" in line, line
    (case_dir,) = [p for p in cases.iterdir() if p.is_dir()]
    assert leftovers(case_dir) == []
    assert main(["cases", "--root", str(cases)]) == 0
    listing = capsys.readouterr().out
    assert "closed" not in listing and "interrupted" in listing, listing


def test_atomic_writers_keep_the_old_file_and_leave_no_temporary(tmp_path):
    target = tmp_path / "keep.json"
    target.write_text("old")
    folder_in_the_way = tmp_path / f".{target.name}.{os.getpid()}.tmp"
    folder_in_the_way.mkdir()                         # the temporary name cannot be a file: the write fails
    with pytest.raises(InputError, match="keep.json: could not write the output"):
        write_bytes_atomic(target, b"new")
    assert target.read_text() == "old"
    folder_in_the_way.rmdir()
    import numpy as np

    with pytest.raises(InputError, match="unknown image type"):
        write_image(tmp_path / "x.xyz", np.zeros((4, 4), np.uint8))
    write_image(tmp_path / "x.png", np.zeros((4, 4), np.uint8))
    assert leftovers(tmp_path) == []


def test_cases_lists_damaged_cases_beside_good_ones(tmp_path, capsys):
    from or_assist.session.caselog import CaseLog

    good = CaseLog.create(tmp_path)
    good.close()
    broken = CaseLog.create(tmp_path)
    broken.mark_interrupted("the video source sent no frame for 30 s")
    broken.close()
    damaged = CaseLog.create(tmp_path)
    damaged.close()
    (damaged.case_dir / "case.sqlite").write_bytes(b"not a database" * 100)
    no_db = tmp_path / "20260101T000000_abcdef"
    (no_db / "images").mkdir(parents=True)
    assert main(["cases", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert good.case_dir.name in out and "closed" in out
    assert "interrupted: the video source sent no frame for 30 s" in out
    assert out.count("DAMAGED") == 2 and str(damaged.case_dir) in out and str(no_db) in out
    with sqlite3.connect(good.case_dir / "case.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM case_info").fetchone()[0] == 1   # listing changed nothing
