"""Outputs that cannot be written, with real operating-system faults.

* a read-only file system: a private mount namespace (``unshare -rm``) in which a test
  folder is bind-mounted read-only, so writes fail with EROFS also for root (permission
  bits do not stop root);
* a folder without write permission (``chmod 0o555``), where root is stopped by it
  because the child runs without the capabilities that let root ignore permission bits
  (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER dropped from its bounding set), so
  writes fail with EACCES: this works where user namespaces are forbidden (CI containers);
* a full disk: ``RLIMIT_FSIZE`` in the child with SIGXFSZ ignored, so a write past the
  limit fails with EFBIG as it would with ENOSPC;
* an output under a regular file, or a file path that is a folder.

Each command must stop with exit 2 and one line naming the path, before any long work,
and leave no partial or temporary file; a live case that hits the fault is listed as
interrupted with the reason.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from or_assist.cli import main
from or_assist.core.outputs import check_output_dir, check_output_file, write_bytes_atomic, write_image
from or_assist.errors import InputError
from tests.conftest import REPO_ROOT

REPO = REPO_ROOT
TIMEOUT_S = 300


def _unshare_works() -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount --bind -o ro / / 2>/dev/null || mount -t tmpfs x /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


UNSHARE = _unshare_works()
needs_unshare = pytest.mark.skipif(not UNSHARE, reason="needs unshare -rm (user and mount namespaces)")

_PR_CAPBSET_DROP = 24
_CAPS_OVER_PERMISSIONS = (1, 2, 3)   # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER


def obey_permissions() -> None:
    """``preexec_fn``: as root, drop the capabilities that let root write where permission bits say no."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _CAPS_OVER_PERMISSIONS:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _permissions_work() -> bool:
    """Whether a child run through :func:`obey_permissions` is stopped by a folder's mode 0o555."""
    import tempfile

    if sys.platform != "linux":
        return False
    folder = Path(tempfile.mkdtemp(prefix="or_assist_perm_probe_"))
    try:
        folder.chmod(0o555)
        probe = subprocess.run([sys.executable, "-c", f"open({str(folder / 'x')!r}, 'w')"], capture_output=True,
                               preexec_fn=obey_permissions, timeout=60)
        return probe.returncode != 0 and b"PermissionError" in probe.stderr
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


PERMISSIONS = _permissions_work()
#: The real ways of making a folder unwritable here: a read-only mount, or permission bits obeyed.
UNWRITABLE = [pytest.param("read-only mount", marks=needs_unshare),
              pytest.param("no write permission", marks=pytest.mark.skipif(
                  not PERMISSIONS, reason="cannot drop root's capabilities over permission bits here"))]


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen", "PYTHONUNBUFFERED": "1"}


def run_read_only(read_only: Path, argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``or-assist ARGV`` where ``read_only`` is a read-only mount (EROFS on every write)."""
    script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, str(read_only), sys.executable, "-m",
                           "or_assist.cli", *argv], capture_output=True, text=True, cwd=REPO,
                          env=_env(tmp_path), timeout=TIMEOUT_S)


def run_unwritable(how: str, folder: Path, argv: list[str], tmp_path: Path, *,
                   mode: int = 0o555) -> subprocess.CompletedProcess:
    """``or-assist ARGV`` with ``folder`` unwritable in the way ``how`` (see :data:`UNWRITABLE`);
    ``mode`` is the folder's mode for "no write permission"."""
    if how == "read-only mount":
        return run_read_only(folder, argv, tmp_path)
    old_mode = folder.stat().st_mode & 0o7777
    folder.chmod(mode)
    try:
        return subprocess.run([sys.executable, "-m", "or_assist.cli", *argv], capture_output=True, text=True,
                              cwd=REPO, env=_env(tmp_path), timeout=TIMEOUT_S, preexec_fn=obey_permissions)
    finally:
        folder.chmod(old_mode)


def unwritable_words(how: str) -> str:
    """What the one-line error must say for ``how``."""
    return "read-only" if how == "read-only mount" else "permission denied"


def run_disk_full(limit_bytes: int, argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``or-assist ARGV`` with files limited to ``limit_bytes`` (a full disk for anything larger)."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "or_assist.cli", *argv], capture_output=True, text=True,
                          cwd=REPO, env=_env(tmp_path), timeout=TIMEOUT_S, preexec_fn=limit)


def one_error_line(proc: subprocess.CompletedProcess, progress: str | None = None) -> str:
    """The one ``or-assist: error:`` line of a run that exited 2 (lines starting ``progress`` aside)."""
    lines = [line for line in proc.stderr.splitlines()
             if line.strip() and not (progress and line.startswith(progress))]
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
    from or_assist.core.view_poses import plan_view_pose
    from or_assist.core.pose import save_pose
    from or_assist.sim.sample import build_sample_data

    root = tmp_path_factory.mktemp("outputs")
    paths = {k: Path(v) for k, v in build_sample_data(root / "sample").items()}
    paths["g128"] = root / "g128.json"
    save_geometry(load_profile("siemens_cios_fusion").geometry_at(128), paths["g128"])
    plan = load_plan(paths["plan"])
    paths["implant"] = plan.implants[0].id
    paths["pose"] = root / "pose.json"
    save_pose(plan_view_pose(plan, plan.implants[0].id, "lateral", geometry_path=paths["g128"]), paths["pose"])
    from or_assist.session.caselog import CaseLog

    case = CaseLog.create(root / "cases")
    case.close()
    paths["case"], paths["root"] = case.case_dir, root
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


def _writing_commands(sample, out: Path) -> list[tuple[list[str], Path, str]]:
    """Every command that writes, as ``(argv, output, "file" or "dir")`` with the output in ``out``.

    The inputs are real, but none is read before the output check.
    """
    ct, g, plan, pose, imp = (str(sample[k]) for k in ("ct", "g128", "plan", "pose", "implant"))
    pin = ["pin", "--ct", ct, "--geometry", g, "--plan", plan, "--implant", imp, "--shot", ct, pose]
    sim = ["simulate", ct, "--pose", pose, "--geometry", g]
    other = sample["root"]          # a writable place for the outputs not under test
    commands = [
        (["register", "--ct", ct, "--geometry", g, "--image", ct, "--init", pose, "--out"], "r.json", "file"),
        (pin + ["--out"], "d.json", "file"),
        (pin + ["--out", str(other / "d.json"), "--overlay"], "o.png", "file"),
        (sim + ["--out"], "s.png", "file"),
        (sim + ["--out", str(other / "s.png"), "--video-geometry"], "vg.json", "file"),
        (["views", plan, "--geometry", g, "--out"], "lib", "dir"),
        (["evaluate", "--plan", plan, "--postop", ct, "--out"], "e.json", "file"),
        (["evaluate", "--cohort", f"{plan}:{ct}", "--out"], "cohort", "dir"),
        (["calibrate", ct, "--phantom", "bead_grid_two_plane", "--out"], "c.json", "file"),
        (["geometry", "siemens_cios_fusion", "--out"], "g.json", "file"),
        (["view-pose", plan, "--implant", imp, "--view", "lateral", "--out"], "p.json", "file"),
        (["report", str(sample["case"]), "--pdf", "--out"], "report.html", "file"),
        (["export", str(sample["case"])], "export", "dir"),
        (["sample", "--out"], "sample", "dir"),
        (["run", "--plan", plan, "--geometry", g, "--source", ct, "--headless", "--cases"], "cases", "dir"),
        (["demo", "--headless", "--max-shots", "1", "--cases"], "cases", "dir"),
        (["demo", "--overview", "--out"], "overview", "dir"),
    ]
    return [(argv + [str(out / name)], out / name, kind) for argv, name, kind in commands]


def _run(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "or_assist.cli", *argv], capture_output=True, text=True,
                          cwd=REPO, env=_env(tmp_path), timeout=TIMEOUT_S)


@pytest.mark.parametrize("how", UNWRITABLE)
def test_unwritable_outputs_are_refused_before_any_work(sample, tmp_path, how):
    ro = tmp_path / "ro"
    ro.mkdir()
    commands = _writing_commands(sample, ro)
    assert len(commands) == 17
    for argv, out, _ in commands:
        proc = run_unwritable(how, ro, argv, tmp_path)
        line = one_error_line(proc)
        assert unwritable_words(how) in line and str(out) in line, (argv[0], line)
        assert proc.stdout.strip() == "", (argv[0], proc.stdout)    # nothing was computed first
    assert list(ro.iterdir()) == []


@pytest.mark.parametrize("how", UNWRITABLE)
def test_report_beside_an_unwritable_case_is_refused_before_any_work(tmp_path, how):
    from or_assist.session.caselog import CaseLog

    log = CaseLog.create(tmp_path / "cases")
    log.close()
    proc = run_unwritable(how, log.case_dir, ["report", str(log.case_dir)], tmp_path)
    line = one_error_line(proc)
    assert str(log.case_dir / "report.html") in line and "CASE_DIR" in line, line
    assert unwritable_words(how) in line, line
    assert not (log.case_dir / "report.html").exists()


@pytest.mark.slow
def test_outputs_under_a_file_or_onto_a_folder_are_refused_before_any_work(sample, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for argv, _, _ in _writing_commands(sample, a_file):
        line = one_error_line(_run(argv, tmp_path))
        assert f"{a_file} is a file, not a folder" in line, (argv[0], line)
    for argv, out, kind in _writing_commands(sample, tmp_path / "in_the_way"):
        out.parent.mkdir(exist_ok=True)
        if kind == "dir":
            out.write_text("a file where a folder is expected")
        else:
            out.mkdir()
        line = one_error_line(_run(argv, tmp_path))
        assert str(out) in line and ("is a file; expected" if kind == "dir" else "is a folder; expected") in line, line
        out.unlink() if kind == "dir" else out.rmdir()


_DRIVER = """
import os, subprocess, sys, time
from pathlib import Path
how, cases = sys.argv[1], Path(sys.argv[2])
p = subprocess.Popen([sys.executable, "-m", "or_assist.cli", "demo", "--headless", "--max-shots", "6",
                      "--cases", str(cases)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
t0 = time.monotonic()
while not list(cases.glob("*/images/*.png")):
    if p.poll() is not None or time.monotonic() - t0 > 240:
        sys.exit("no shot image appeared")
    time.sleep(0.05)
images = next(cases.glob("*/images"))
if how == "read-only mount":
    subprocess.run(["mount", "--bind", "-o", "ro", str(images), str(images)], check=True)
else:
    images.chmod(0o555)
err = p.communicate()[1]
sys.stderr.write(err)
sys.exit(p.returncode)
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", UNWRITABLE)
def test_images_folder_unwritable_mid_case_interrupts_the_case(tmp_path, capsys, how):
    """The case's image folder turns unwritable after the first shot: exit 2, one line, interrupted."""
    cases = tmp_path / "cases"
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    argv = [sys.executable, str(driver), how, str(cases)]
    proc = subprocess.run(["unshare", "-rm", *argv] if how == "read-only mount" else argv, capture_output=True,
                          text=True, cwd=REPO, env=_env(tmp_path), timeout=TIMEOUT_S,
                          preexec_fn=None if how == "read-only mount" else obey_permissions)
    line = one_error_line(proc)
    assert unwritable_words(how) in line and "images" in line, line
    (case_dir,) = [p for p in cases.iterdir() if p.is_dir()]
    (case_dir / "images").chmod(0o700)
    assert main(["cases", "--root", str(cases)]) == 0
    listing = capsys.readouterr().out
    assert "interrupted: " in listing and unwritable_words(how) in listing, listing
    # a write caught mid-way by the folder turning read-only cannot remove its temporary
    # file; the listing must name every one that is left
    for p in leftovers(case_dir):
        assert p.name.endswith(".tmp") and p.relative_to(case_dir).as_posix() in listing, (p, listing)
    assert "closed" not in listing and "open or interrupted" not in listing, listing


def test_disk_full_while_writing_leaves_no_partial_file(sample, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = run_disk_full(32 * 1024, ["simulate", str(sample["ct"]), "--pose", str(sample["pose"]), "--geometry",
                                     str(sample["geometry"]), "--frame", "1024x1024", "--out", str(out / "s.png")],
                         tmp_path)
    line = one_error_line(proc)
    assert str(out / "s.png") in line and ("disk is full" in line or "too large" in line), line
    assert list(out.iterdir()) == []                   # neither the PNG nor a temporary file


@pytest.mark.slow
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


@pytest.mark.parametrize("how", UNWRITABLE)
def test_closed_cases_on_read_only_storage_are_listed_and_exported(tmp_path, how):
    """A case archived on read-only storage is readable (SQLite cannot make its -shm file there)."""
    from or_assist.session.caselog import CaseLog

    log = CaseLog.create(tmp_path / "cases")
    log.log_event("note", {"text": "archived"})
    log.close()
    proc = run_unwritable(how, log.case_dir, ["cases", "--root", str(tmp_path / "cases")], tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "DAMAGED" not in proc.stdout and log.case_dir.name in proc.stdout and "closed" in proc.stdout, proc.stdout
    proc = run_unwritable(how, log.case_dir, ["export", str(log.case_dir), str(tmp_path / "export")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "export" / "case.json").is_file()


@pytest.mark.skipif(not PERMISSIONS, reason="cannot drop root's capabilities over permission bits here")
def test_an_unreadable_case_folder_is_one_damaged_row(tmp_path):
    from or_assist.session.caselog import CaseLog

    good = CaseLog.create(tmp_path / "cases")
    good.close()
    locked = CaseLog.create(tmp_path / "cases")
    locked.close()
    proc = run_unwritable("no write permission", locked.case_dir, ["cases", "--root", str(tmp_path / "cases")],
                          tmp_path, mode=0o000)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    rows = proc.stdout.splitlines()
    assert any(r.startswith(good.case_dir.name) and "closed" in r for r in rows), rows
    damaged = [r for r in rows if r.startswith("DAMAGED")]
    assert len(damaged) == 1 and str(locked.case_dir) in damaged[0] and "permission denied" in damaged[0], rows


def test_disk_full_while_writing_the_sample_ct_leaves_no_partial_file(tmp_path):
    """ITK reports a short NIfTI write only on stderr: the CT is read back, the partial file removed."""
    out = tmp_path / "sample"
    line = one_error_line(run_disk_full(64 * 1024, ["sample", "--out", str(out)], tmp_path))
    assert f"{out / 'phantom_pelvis_ct.nii.gz'}: could not write the CT" in line, line
    assert list(out.glob("*.nii*")) == [] and leftovers(tmp_path) == []


def test_disk_full_while_writing_a_view_library_leaves_no_temporary(sample, tmp_path):
    out = tmp_path / "lib"
    line = one_error_line(run_disk_full(16 * 1024, ["views", str(sample["plan"]), "--geometry", str(sample["g128"]),
                                                    "--size-px", "64", "--no-neighbourhood", "--no-png", "--out",
                                                    str(out)], tmp_path), progress="views [")
    assert f"{out / 'views.npz'}: could not write the view library" in line, line
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_disk_full_while_exporting_or_reporting_a_case(tmp_path):
    from or_assist.live.run import run_headless
    from or_assist.register.settings import RegistrationSettings
    from or_assist.sim.scenario.demo_case import open_demo_case

    # the demo's case, its shot registered whatever the machine's speed (a registered shot
    # carries an overlay, so the report is larger than the disk's 128 KiB)
    cases = tmp_path / "cases"
    case = open_demo_case(realtime=False, loop=False, implants=["L1"], cases_root=cases,
                          registration_settings=RegistrationSettings(time_budget_s=None))
    try:
        assert run_headless(case, max_shots=1, log=lambda line: None)["registered"] == 1
    finally:
        case.close()
    (case_dir,) = list(cases.iterdir())
    out = tmp_path / "out"
    line = one_error_line(run_disk_full(128 * 1024, ["export", str(case_dir), str(out / "export")], tmp_path))
    assert str(out / "export") in line and "could not write the export" in line, line
    assert "corrupt" not in line and leftovers(out) == []
    line = one_error_line(run_disk_full(128 * 1024, ["report", str(case_dir), "--out", str(out / "r.html")], tmp_path))
    assert f"{out / 'r.html'}: could not write the report" in line, line
    assert not (out / "r.html").exists() and leftovers(out) == []
