"""View library build: time, size on disk and per-view render time at default settings.

For each case, what ``or-assist views PLAN --geometry G.json --out DIR`` does, timed in
parts: loading the plan and its CT, rendering the library (named views at <= 512 px,
the default 5 x 5 neighbourhood of +-10 deg at <= 128 px, implants shown) and saving
``views.npz`` plus the PNGs. Per-view times come from the progress callback (DRR, metal,
outlines and display image of one view). Target (issue "Virtual fluoroscopy"): a
3-implant plan in <= 30 s and <= 200 MB on disk.

Cases: the sample plan on the phantom pelvis (``or_assist.sim.sample.build_sample_data``,
its own geometry) when the phantom module is available, and the real-CT fixture plan
``tests/data/real_ct_plan.json`` with the Siemens Cios Fusion profile's full detector.

Run from the repository root::

    python benchmarks/view_library.py
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

from or_assist.core.carm_profiles import load_profile  # noqa: E402
from or_assist.core.geometry import load_geometry  # noqa: E402
from or_assist.core.plan import load_plan, load_plan_ct  # noqa: E402
from or_assist.render.views.build import build_view_library  # noqa: E402
from or_assist.render.views.io import save_view_library  # noqa: E402

REAL_PLAN = REPO_ROOT / "tests" / "data" / "real_ct_plan.json"
TARGET_S = 30.0
TARGET_MB = 200.0


def sample_case(work: Path):
    """(name, plan path, geometry) of the sample case, or (None, reason)."""
    try:
        from or_assist.sim.sample import build_sample_data
        paths = build_sample_data(work / "sample")
    except ImportError as exc:
        return None, f"sample data not available ({exc})"
    return ("sample phantom", paths["plan"], load_geometry(paths["geometry"])), ""


def run_case(name: str, plan_path: Path, geometry, out: Path) -> dict:
    t0 = time.perf_counter()
    plan = load_plan(plan_path)
    ct, _ = load_plan_ct(plan)
    t_load = time.perf_counter() - t0
    stamps: list[tuple[float, str]] = []
    t1 = time.perf_counter()
    lib = build_view_library(plan, geometry, ct=ct,
                             progress=lambda done, total, view: stamps.append((time.perf_counter(), view)))
    t_build = time.perf_counter() - t1
    t2 = time.perf_counter()
    paths = save_view_library(lib, out)
    t_save = time.perf_counter() - t2
    per_view = {e.name: b[0] - a[0] for e, a, b in zip(lib.entries, stamps, stamps[1:])}
    named = [per_view[e.name] for e in lib.entries if e.is_named]
    neighbours = [per_view[e.name] for e in lib.entries if not e.is_named]
    npz_mb = paths["library"].stat().st_size / 1e6
    png_mb = sum(p.stat().st_size for p in paths["png"]) / 1e6
    first_named = lib.named_entries()[0]
    first_nb = next((e for e in lib.entries if not e.is_named), None)
    return {
        "name": name, "voxels": "x".join(str(n) for n in ct.hu.shape[::-1]),
        "spacing": min(ct.spacing_mm), "implants": len(plan.implants),
        "named": len(named), "neighbours": len(neighbours),
        "named_px": "x".join(map(str, lib.display[0].shape[::-1])),
        "nb_px": "-" if first_nb is None else "x".join(map(str, lib.display[lib.index(first_nb.name)].shape[::-1])),
        "load": t_load, "build": t_build, "save": t_save, "total": t_load + t_build + t_save,
        "named_ms": 1e3 * statistics.median(named), "nb_ms": 1e3 * statistics.median(neighbours) if neighbours else 0.0,
        "npz_mb": npz_mb, "png_mb": png_mb, "first": first_named.name,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", type=Path, default=None, help="write the libraries here instead of a temp folder")
    args = ap.parse_args(argv)

    import numba
    print(f"view library build: numba {numba.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; default settings\n")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        cases, notes = [], []
        sample, why = sample_case(work)
        if sample is None:
            notes.append(f"sample phantom: skipped: {why}")
        else:
            cases.append(sample)
        if REAL_PLAN.exists():
            cases.append(("real CT fixture", REAL_PLAN, load_profile("siemens_cios_fusion").geometry))
        else:
            notes.append(f"real CT fixture: skipped: {REAL_PLAN} not found")
        rows = [run_case(name, plan, geom, work / name.replace(" ", "_")) for name, plan, geom in cases]

    head = (f"{'case':<16} {'CT voxels':<12} {'mm':>4} {'impl':>4} {'views':>11} {'named px':>8} {'nb px':>7} "
            f"{'load s':>6} {'build s':>7} {'save s':>6} {'total s':>7} {'ms/named':>8} {'ms/nb':>6} "
            f"{'npz MB':>6} {'png MB':>6} {'target':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        ok = r["total"] <= TARGET_S and r["npz_mb"] + r["png_mb"] <= TARGET_MB
        print(f"{r['name']:<16} {r['voxels']:<12} {r['spacing']:>4.1f} {r['implants']:>4} "
              f"{r['named']:>3} + {r['neighbours']:<5} {r['named_px']:>8} {r['nb_px']:>7} {r['load']:>6.2f} "
              f"{r['build']:>7.2f} {r['save']:>6.2f} {r['total']:>7.2f} {r['named_ms']:>8.1f} {r['nb_ms']:>6.1f} "
              f"{r['npz_mb']:>6.1f} {r['png_mb']:>6.1f} {('ok' if ok else 'MISS'):>8}")
    for note in notes:
        print(note)
    print(f"\ntarget: <= {TARGET_S:g} s (total) and <= {TARGET_MB:g} MB (npz + PNGs) for a 3-implant plan; "
          "ms/named and ms/nb are medians per view (DRR + metal + outlines + display)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
