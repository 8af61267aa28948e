"""Soak: ``or-assist run --headless`` on a replayed RTSP stream for a long time.

A recorded C-arm output is replayed in a loop by GStreamer's RTSP server
(``tests/video/rtsp_server.py --jpeg-folder``, run by the system Python with the Debian
packages ``python3-gst-1.0`` and ``gir1.2-gst-rtsp-server-1.0``): simulated shots of the
sample pelvis (lateral, inlet and outlet of the first implant, with the guide pin at
three depths), each held on the "monitor" for ``--hold-s`` seconds, as a grabber sees a
C-arm's last-image-hold. ``or-assist run --headless`` reads the stream for
``--minutes``; every ``--sample-s`` seconds the script records the process's resident
memory (VmRSS) and CPU time, and at the end prints a table, the growth of RSS from the
first sample after warm-up to the last, and what the case log holds.

Run from the repository root::

    python benchmarks/soak.py --minutes 30
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from or_assist.core.geometry import save_geometry  # noqa: E402
from or_assist.core.instruments import GuidePin  # noqa: E402
from or_assist.core.plan import load_plan  # noqa: E402
from or_assist.core.ct.load import load_ct  # noqa: E402
from or_assist.core.view_poses import plan_view_pose  # noqa: E402
from or_assist.core.carm_profiles import load_profile  # noqa: E402
from or_assist.sim.shots.simulate import simulate_shot
from or_assist.sim.shots.settings import ShotSettings
from or_assist.sim.sample import build_sample_data  # noqa: E402
from or_assist.session.caselog import list_cases  # noqa: E402

SERVER = REPO / "tests" / "video" / "rtsp_server.py"
FRAME = (1024, 768)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_recording(folder: Path, work: Path, hold_s: float, fps: int) -> Path:
    """JPEG frames of the replayed C-arm output and the geometry of their pixels."""
    paths = build_sample_data(work / "sample")
    plan = load_plan(paths["plan"])
    ct = load_ct(paths["ct"])
    implant = plan.implants[0]
    geometry = load_profile("siemens_cios_fusion").geometry_at(512)
    frames, video_geometry = [], None
    for k, view in enumerate(("lateral", "inlet", "outlet")):
        pose = plan_view_pose(plan, implant.id, view, source_to_isocenter_mm=geometry.source_to_isocenter_mm)
        for depth in (0.4, 0.7, 1.0):
            entry, apex = implant.entry_lps_mm, implant.apex_lps_mm
            tip = entry + depth * (apex - entry)
            back = entry - 0.9 * (apex - entry)
            shot = simulate_shot(ct, pose, geometry, pin=GuidePin(tip, back),
                                 settings=ShotSettings(frame_size_px=FRAME, seed=10 * k + int(depth * 10)))
            frames.append(shot.frame)
            video_geometry = shot.video_geometry
    folder.mkdir(parents=True)
    index = 0
    first = None
    for frame in frames:
        for _ in range(max(1, round(hold_s * fps))):
            path = folder / f"{index:05d}.jpg"
            if first is None:
                cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
                first = path
            else:
                os.link(first, path)   # the same picture held: one file, many names
            index += 1
        first = None
    out = work / "video_geometry.json"
    save_geometry(video_geometry, out)
    return out, paths["plan"], len(frames), index


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--hold-s", type=float, default=8.0, help="seconds each shot stays on the monitor")
    ap.add_argument("--fps", type=int, default=10, help="frame rate of the replayed stream")
    ap.add_argument("--sample-s", type=float, default=60.0, help="seconds between memory samples")
    ap.add_argument("--warmup-s", type=float, default=120.0, help="RSS growth is measured from this time on")
    args = ap.parse_args()
    if not Path("/usr/bin/python3").exists():
        print("needs the system Python with GStreamer's RTSP server (see the docstring)", file=sys.stderr)
        return 2
    duration_s = 60.0 * args.minutes
    with tempfile.TemporaryDirectory(prefix="or_assist_soak_") as tmp:
        work = Path(tmp)
        geometry, plan, n_shots, n_frames = write_recording(work / "frames", work, args.hold_s, args.fps)
        port = free_port()
        server = subprocess.Popen(["/usr/bin/python3", str(SERVER), "--port", str(port), "--lifetime",
                                   str(duration_s + 120), "--jpeg-folder", str(work / "frames"), "--fps",
                                   str(args.fps)], stdout=subprocess.PIPE, text=True)
        ready = server.stdout.readline()
        if not ready.startswith("READY"):
            print(f"RTSP server did not start: {ready!r}", file=sys.stderr)
            return 1
        url = f"rtsp://127.0.0.1:{port}/carm"
        print(f"replaying {n_shots} shots ({n_frames} frames, {args.hold_s:g} s each at {args.fps} fps) "
              f"in a loop from {url} for {args.minutes:g} min")
        cmd = [sys.executable, "-m", "or_assist.cli", "run", "--headless", "--plan", str(plan), "--geometry",
               str(geometry), "--source", url, "--duration", str(duration_s), "--cases", str(work / "cases")]
        env = {**os.environ, "HOME": str(work / "home"), "PYTHONUNBUFFERED": "1"}
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
        reader.start()
        samples = []
        print(f"{'t (min)':>8} {'RSS (MiB)':>10} {'CPU (s)':>9} {'shots':>6} {'registered':>11}")
        time.sleep(min(args.sample_s, 30.0))   # the first sample once the program has loaded
        while proc.poll() is None:
            t = time.monotonic() - started
            rss, cpu = rss_kib(proc.pid), cpu_s(proc.pid)
            if rss is not None:
                shots = sum(1 for line in lines if line.startswith("shot"))
                registered = sum(1 for line in lines if line.startswith("shot") and ": registered" in line)
                samples.append((t, rss / 1024.0, cpu, shots))
                print(f"{t / 60:8.1f} {rss / 1024:10.1f} {cpu or 0:9.0f} {shots:6d} {registered:11d}", flush=True)
            deadline = time.monotonic() + args.sample_s
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
            if time.monotonic() - started > duration_s + 300:
                proc.kill()
                print("run did not end 5 min after --duration: killed (a hang)")
        reader.join(5)
        server.terminate()
        server.wait(10)
        print(f"\nexit status {proc.returncode} after {(time.monotonic() - started) / 60:.1f} min")
        for line in lines[-3:]:
            print(f"  | {line.rstrip()}")
        after = [s for s in samples if s[0] >= args.warmup_s]
        if len(after) >= 2:
            growth = after[-1][1] - after[0][1]
            hours = (after[-1][0] - after[0][0]) / 3600.0
            print(f"RSS: {samples[0][1]:.0f} MiB at the first sample ({samples[0][0] / 60:.1f} min), "
                  f"{after[0][1]:.0f} MiB after warm-up "
                  f"({after[0][0] / 60:.1f} min), {after[-1][1]:.0f} MiB at the end "
                  f"({growth:+.1f} MiB, {growth / hours:+.1f} MiB/h); peak {max(s[1] for s in samples):.0f} MiB")
        for case in list_cases(work / "cases"):
            print(f"case: {case.get('status', case.get('error'))}, shots {case.get('n_shots', '?')}")
        return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
