"""Planner live-view latency: edit -> reduced-resolution virtual view on screen.

For the sample phantom (1.5 mm) and the real 3 mm CT with its fixture plan, repeatedly
change the active implant's length (alternating two catalogue lengths) and measure:

* ``core``: ``PlanEditor.set_length`` + ``LiveViews.render(..., reduced=True)`` of each
  view kind (Qt-free);
* ``gui``: the same edit in the offscreen :class:`PlannerWindow`, from the edit call to the
  reduced image set in the visible view (``last_live_latency_s``, excludes the checks and
  slices that follow), and the whole edit handling (checks, tables, slices included);
* ``full``: one full-resolution (512 px) render, done in a worker when idle.

Target: <= 100 ms at reduced resolution. Usage: ``python benchmarks/planner_latency.py [--n 30]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from or_assist.core.ct.load import load_ct  # noqa: E402
from or_assist.core.plan import load_plan  # noqa: E402
from or_assist.planning.edit import PlanEditor  # noqa: E402
from or_assist.render.plan_live import LIVE_VIEW_KINDS, LiveViews  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _cases():
    from or_assist.sim.sample import build_sample_data

    sample = build_sample_data()
    yield "phantom 1.5 mm", load_plan(sample["plan"])
    real = REPO / "tests" / "data" / "real_ct_plan.json"
    if real.is_file():
        yield "real CT 3 mm", load_plan(real)


def _stats(ms: list[float]) -> str:
    a = np.asarray(ms)
    return f"{np.median(a):7.1f} {np.percentile(a, 95):7.1f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="edits per measurement")
    args = ap.parse_args(argv)
    from PyQt5 import QtWidgets

    from or_assist.app.planner.window import PlannerWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    print(f"{'case':16s} {'path':28s} {'median':>7s} {'p95':>7s}  (ms, {args.n} edits, {os.cpu_count()} CPUs)")
    for name, plan in _cases():
        ct = load_ct(plan.ct_path)
        imp = plan.implants[0]
        lengths = [imp.item.length_mm, imp.item.length_mm - 5.0]
        ed = PlanEditor(ct, plan)
        live = LiveViews(ct)
        for kind in LIVE_VIEW_KINDS:
            times = []
            for k in range(args.n):
                t0 = time.perf_counter()
                ed.set_length(imp.id, lengths[k % 2])
                live.render(ed.plan, imp.id, kind, reduced=True)
                times.append(1000 * (time.perf_counter() - t0))
            print(f"{name:16s} {'core edit+render ' + kind:28s} {_stats(times)}")
        t0 = time.perf_counter()
        live.render(ed.plan, imp.id, "lateral", reduced=False)
        print(f"{name:16s} {'full 512 px lateral (idle)':28s} {1000 * (time.perf_counter() - t0):7.1f}")
        win = PlannerWindow(ct, plan)
        win.show()
        app.processEvents()
        live_ms, total_ms = [], []
        for k in range(args.n):
            t0 = time.perf_counter()
            win.editor.set_length(imp.id, lengths[k % 2])
            total_ms.append(1000 * (time.perf_counter() - t0))
            live_ms.append(1000 * win.last_live_latency_s)
            app.processEvents()
        print(f"{name:16s} {'gui edit -> live view':28s} {_stats(live_ms)}")
        print(f"{name:16s} {'gui whole edit handling':28s} {_stats(total_ms)}")
        win._force_close = True
        win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
