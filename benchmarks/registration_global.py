"""Where the global stage's hypotheses land: the stage alone at the benchmark's starts.

For the family shots of ``benchmarks/registration.py`` (real CT, the same shots and
starts: :func:`registration.family_shots`), runs
:func:`or_assist.register.global_search.global_candidates` from the start and reports how
often the best hypothesis, any of the kept ones, and the one the pipeline would rank
first (highest gradient correlation at 32 px) land within the capture range: rotation
under ``--max-deg`` and in-plane displacement of the isocentre under ``--max-mm`` (depth
is not searched and not counted). The start itself is counted the same way.

Run from the repository root (simulation dominates: about 10 s per shot on 2 cores)::

    python benchmarks/registration_global.py --families cluttered,intensifier --per-cell 2 --seed 7
    python benchmarks/registration_global.py --size-px 64 --seed 8
    python benchmarks/registration_global.py --families intensifier,low_dose,hard_beam,cluttered \
        --views lateral,inlet,outlet --per-cell 2 --seed 34 [--compare edges]

Measured, fresh seed 34 (the four held-out families x lateral / inlet / outlet x 2: 24
shots; no start within 3 deg / 5 mm), 9 x 9 tilts of 2.5 deg (``--tilt-step-deg 2.5``), 7 rolls:

=============================  ====  =========  ==================  ======================
correlated                     best  any of 3   ranked (32-px gc)   time median (1 thread)
=============================  ====  =========  ==================  ======================
signed gradients (``gc``)      19    23         17                  0.46 s
edge magnitudes (``edges``)     4     8          7                  0.37 s
=============================  ====  =========  ==================  ======================

Earlier, the first version (edges, 5 x 5 tilts of 4 deg; seed 7, cluttered + intensifier,
16 shots): best 5/16, any 8/16, ranked 8/16 (docs/registration_global_search.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import registration as bench  # noqa: E402
from or_assist.register.global_search import COMPARE, GlobalSearch, global_candidates  # noqa: E402
from or_assist.register.pipeline import registration_ct  # noqa: E402
from or_assist.register.pose_params import isocenter_source_mm, pose_error  # noqa: E402
from or_assist.register.settings import RegistrationSettings  # noqa: E402
from or_assist.register.shot import prepare_shot  # noqa: E402
from or_assist.register.similarity import prepare_fixed  # noqa: E402
from or_assist.render.drr import AttenuationVolume, DRRRenderer  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default="cluttered,intensifier")
    ap.add_argument("--views", default=",".join(bench.VIEWS_ALL))
    ap.add_argument("--per-cell", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--size-px", type=int, default=GlobalSearch().size_px, help="level of the hypotheses")
    ap.add_argument("--compare", choices=COMPARE, default=GlobalSearch().compare,
                    help="what the hypotheses correlate: signed gradients (gc) or edge magnitudes (edges)")
    ap.add_argument("--tilt-step-deg", type=float, default=None,
                    help="out-of-plane grid step, a grid within +-10 deg (default: the GlobalSearch's grid)")
    ap.add_argument("--max-deg", type=float, default=3.0)
    ap.add_argument("--max-mm", type=float, default=5.0)
    args = ap.parse_args(argv)
    search = GlobalSearch(size_px=args.size_px, compare=args.compare)
    if args.tilt_step_deg is not None:
        half = int(10.0 // args.tilt_step_deg)   # a grid symmetric about the start, within +-10 deg
        search = replace(search, tilts_deg=tuple(float(k * args.tilt_step_deg) for k in range(-half, half + 1)))
    ct, plan, _ = bench.load_case("real")
    renderer = DRRRenderer(AttenuationVolume.from_ct(registration_ct(ct, RegistrationSettings())))
    counts = {"start": 0, "best": 0, "any": 0, "ranked": 0}
    seconds, n = [], 0
    for view, family, k, shot, start, polarity, _ in bench.family_shots(
            ct, plan, args.views.split(","), args.families.split(","), args.per_cell, args.seed):
        prepared = prepare_shot(shot.frame, shot.video_geometry, polarity, tuple(sorted({32, 64, 128, args.size_px})))
        level, coarse = prepared.levels[args.size_px], prepared.levels[32]
        center = isocenter_source_mm(shot.video_geometry)
        t0 = time.perf_counter()
        found = global_candidates(lambda p, g: renderer.render(p, g, step_mm=search.step_mm), level.image,
                                  level.mask, level.geometry, start, center, search)
        seconds.append(time.perf_counter() - t0)
        fixed = prepare_fixed(coarse.image, coarse.mask, "gc")
        gc = [fixed.score(renderer.render(c.pose, coarse.geometry, step_mm=4.0, ray_mask=coarse.mask)) for c in found]

        def within(pose) -> bool:
            angle, disp = pose_error(pose, shot.pose, center)
            return angle < args.max_deg and float(np.hypot(disp[0], disp[1])) < args.max_mm

        hits = [within(c.pose) for c in found]
        got = {"start": within(start), "best": bool(hits and hits[0]), "any": any(hits),
               "ranked": bool(hits and hits[int(np.argmax(gc))])}
        for key in counts:
            counts[key] += got[key]
        n += 1
        print(f"  {view:7s} {family:12s} {k:2d} " + " ".join(f"{key}={int(v)}" for key, v in got.items()) +
              f"  {seconds[-1]:.2f} s", flush=True)
    print(f"\nglobal stage ({search.compare}, {len(search.tilts_deg)}x{len(search.tilts_deg)} tilts, "
          f"{len(search.rolls_deg)} rolls) at {args.size_px} px, seed {args.seed}, {n} shots: within {args.max_deg:g} deg / "
          f"{args.max_mm:g} mm in-plane: " + ", ".join(f"{key} {v}/{n}" for key, v in counts.items()) +
          f"; time median {np.median(seconds):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
