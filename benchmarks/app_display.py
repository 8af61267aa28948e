"""OR display: display rate with 1080p input, shot-to-overlay latency, CPU use.

Runs the demo (``or-assist demo``: the sample pelvis through the shot simulator at
1920 x 1080, 25 fps, real time) in the real window for ``--seconds`` and reports:

* display rate: frames drawn per second (per 1-s window: median and minimum; the
  simulator itself cannot render live-fluoroscopy steps at 25 fps on a small machine,
  so the rate of the source is shown beside it);
* GUI event-loop latency: the largest delay of a 10 ms timer (a frozen GUI shows here);
* shot-to-overlay latency: from the first video frame of a new held image to the
  overlay (or NOT REGISTERED) on screen: median and 95th percentile, with the
  registration's own time;
* CPU use of the whole process (all threads) as a share of one core and of the machine.

Run from the repository root::

    QT_QPA_PLATFORM=offscreen python benchmarks/app_display.py --seconds 60
    xvfb-run -s "-screen 0 1920x1080x24" python benchmarks/app_display.py   # a real X server
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def _percentile(values, q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run the demo (default 60)")
    parser.add_argument("--screenshot", type=Path, default=None, help="save a screenshot of the window here")
    args = parser.parse_args(argv)
    if "DISPLAY" not in os.environ:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PyQt5 import QtCore, QtWidgets

    from or_assist.app.main_window import MainWindow
    from or_assist.app.settings import AppSettings
    from or_assist.app.theme import apply_dark_theme
    from or_assist.sim.scenario.demo_case import open_demo_case

    app = QtWidgets.QApplication(sys.argv[:1])
    apply_dark_theme(app)
    t_open = time.perf_counter()
    case = open_demo_case(cases_root=tempfile.mkdtemp(prefix="or_assist_bench_"))
    t_open = time.perf_counter() - t_open
    window = MainWindow(case, AppSettings())
    window.resize(1920, 1080)
    window.show()
    window.start()

    drawn, source, gaps = [], [], []
    last = [time.monotonic()]
    state = {"frames": 0, "captured": 0, "t": time.monotonic()}

    def tick():
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    def per_second():
        now = time.monotonic()
        drawn.append((window.frames_drawn - state["frames"]) / (now - state["t"]))
        captured = window.capture.stats["frames_captured"]
        source.append((captured - state["captured"]) / (now - state["t"]))
        state["frames"], state["captured"], state["t"] = window.frames_drawn, captured, now

    loop_timer = QtCore.QTimer()
    loop_timer.setTimerType(QtCore.Qt.PreciseTimer)
    loop_timer.timeout.connect(tick)
    loop_timer.start(10)
    second = QtCore.QTimer()
    second.timeout.connect(per_second)
    second.start(1000)
    cpu0, wall0 = time.process_time(), time.monotonic()
    QtCore.QTimer.singleShot(int(1000 * args.seconds), app.quit)
    app.exec_()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    if args.screenshot is not None:
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(args.screenshot))
    lat = window.latencies_s
    proc = list(window.processing_s)
    window.shutdown()

    drawn = drawn[2:] or drawn  # leave out the start-up seconds
    source = source[2:] or source
    ncpu = os.cpu_count() or 1
    rows = [
        ("input", "1920 x 1080 grey, 25 fps (simulated C-arm + grabber)"),
        ("run", f"{wall:.0f} s, {window.results} shots processed, {window.captures} captures"),
        ("display rate, median / min per second", f"{statistics.median(drawn):.1f} / {min(drawn):.1f} fps"),
        ("source rate, median / min per second", f"{statistics.median(source):.1f} / {min(source):.1f} fps"),
        ("frames drawn / frames delivered", f"{100 * sum(drawn) / max(1e-9, sum(source)):.0f} %"),
        ("GUI event loop, 10 ms timer: max / p99 gap",
         f"{1000 * max(gaps):.0f} / {1000 * _percentile(gaps, 99):.0f} ms"),
        ("shot-to-overlay latency, median / p95", f"{_percentile(lat, 50):.2f} / {_percentile(lat, 95):.2f} s "
                                                  f"(n = {len(lat)})"),
        ("CPU, whole process", f"{100 * cpu / wall:.0f} % of one core ({100 * cpu / wall / ncpu:.0f} % of "
                               f"{ncpu} cores)"),
        ("demo start-up (sample case, simulator)", f"{t_open:.1f} s"),
    ]
    if proc:
        rows.append(("shot processing (register + guidance + log), median / p95",
                     f"{_percentile(proc, 50):.2f} / {_percentile(proc, 95):.2f} s"))
    width = max(len(r[0]) for r in rows)
    print(f"\nOR display benchmark ({app.platformName()} platform, {ncpu} CPU cores)\n")
    print(f"| {'quantity':{width}s} | value |")
    print(f"| {'-' * width} | ----- |")
    for name, value in rows:
        print(f"| {name:{width}s} | {value} |")
    if window.errors:
        print("\nerrors:\n" + "\n".join(window.errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
