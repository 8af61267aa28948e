"""Accuracy and speed of the post-op CT evaluation on synthetic cases from the real CT.

Each case: the plan's three implants placed with random apex shifts (sigma 2.5 mm per
axis) and tilts (0-6 deg), the real 3 mm CT (cropped to the pelvis, with the left hip
prosthesis) moved by a random rigid motion (sigma 3 deg, 5 mm), titanium burnt in with
partial volume, 1 mm blur, clipping at 3071 HU, 10 HU noise and 100 HU streaks; every
other case also in other scanner coordinates (origin moved by 300 mm). Prints, per
implant, the error of the recovered apex deviation and angle against the truth (median,
max), the registration error (rotation, and at the planned apexes) and the time per case.

``--family NAME`` (a key of ``or_assist.sim.postop_ct.APPEARANCE_FAMILIES``: standard,
cannulated, metal_2000 ... metal_4000, clip_3071, cannulated_2500) sets the implants'
and scanner's appearance; extra metal pieces near the plan are counted too.

    python benchmarks/postop_accuracy.py [--cases 10] [--seed 0] [--family standard]

Segmentation across families (issue 19; metal threshold, channel filling, hysteresis
grouping and piece merging were set on test case A, seed 5 and seed 11, the merge rule
also on seed 23; reported on seed 37, held out), 4 cases x 3 implants per family:

    for f in standard cannulated cannulated_2500 metal_2000 metal_2500 metal_3000 \
             metal_4000 clip_3071; do python benchmarks/postop_accuracy.py --cases 4 --seed 37 --family $f; done

every family 12 of 12 found, 0 extra pieces; |apex deviation error| median 0.04-0.13 mm,
max 0.08-0.18 mm and |angle error| median 0.05-0.19 deg, max 0.15-0.25 deg, except
cannulated_2500 (max 0.84 mm, 3.08 deg: the solid-prism model misfits a faint
cannulated implant in one case). Before (fixed 2500 HU): no implant found at 2000 HU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from or_assist.core.ct.load import crop_ct, load_ct  # noqa: E402
from or_assist.core.ct.volume import CTVolume  # noqa: E402
from or_assist.core.pose import Pose, rotation_angle_deg
from or_assist.core.plan import load_plan  # noqa: E402
from or_assist.postop.evaluate import evaluate_case  # noqa: E402
from or_assist.sim.postop_ct import (APPEARANCE_FAMILIES, appearance_kwargs, perturbed_implant,  # noqa: E402
                                     rigid_motion, synthesize_postop_ct)

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--family", default="standard", choices=sorted(APPEARANCE_FAMILIES),
                    help="appearance of the implants and scanner (default: standard)")
    ap.add_argument("--ct", default=str(ROOT / "tests" / "data" / "real_ct" / "ct_abdomen_pelvis_3mm.nii.gz"))
    ap.add_argument("--plan", default=str(ROOT / "tests" / "data" / "real_ct_plan.json"))
    args = ap.parse_args()
    ct = load_ct(args.ct)
    plan = load_plan(args.plan)
    pelvis = crop_ct(ct, [-160.0, -280.0, 94.0], [160.0, -20.0, 300.0])
    rng = np.random.default_rng(args.seed)
    apexes = np.array([i.apex_lps_mm for i in plan.implants])
    dev_err, ang_err, entry_err, pos_err, reg_rot, reg_tre, secs = [], [], [], [], [], [], []
    extra_pieces = 0
    print(f"{'case':>4} {'implant':>7} {'true dev':>8} {'found':>6} {'dev err':>7} {'true ang':>8} {'ang err':>7}")
    for k in range(args.cases):
        placed = [perturbed_implant(i, rng.normal(0, 2.5, 3), rng.uniform(0, 6)) for i in plan.implants]
        motion = rigid_motion(rng.normal(0, 3, 3), rng.normal(0, 5, 3), centre_mm=(0.0, -100.0, 210.0))
        post = synthesize_postop_ct(pelvis, placed, motion, noise_hu=10.0, streak_hu=100.0, seed=k,
                                    **appearance_kwargs(args.family))
        if k % 2:
            shift = np.array([0.0, -150.0, 300.0])
            post = CTVolume(post.hu, post.origin_mm + shift, post.spacing_mm, post.direction, source=post.source)
            motion = Pose.from_rotation_translation(np.eye(3), shift).compose(motion)
        t0 = time.perf_counter()
        ev = evaluate_case(plan, post, ct)
        secs.append(time.perf_counter() - t0)
        extra_pieces += len(ev.extra)
        T = ev.registration.T_preop_from_postop
        reg_rot.append(rotation_angle_deg(T.rotation, motion.inverse().rotation))
        reg_tre.append(float(np.linalg.norm(T.apply(motion.apply(apexes)) - apexes, axis=1).max()))
        for got, imp in zip(ev.implants, placed):
            p = plan.implant(imp.id)
            true_dev = float(np.linalg.norm(imp.apex_lps_mm - p.apex_lps_mm))
            true_ang = float(np.degrees(np.arccos(np.clip(imp.axis_unit @ p.axis_unit, -1, 1))))
            true_entry = float(np.linalg.norm(imp.entry_lps_mm - p.entry_lps_mm))
            if not got.found:
                print(f"{k:>4} {imp.id:>7} {true_dev:8.2f}     NO")
                continue
            dev_err.append(abs(got.apex_deviation_mm - true_dev))
            ang_err.append(abs(got.angle_deg - true_ang))
            entry_err.append(abs(got.entry_deviation_mm - true_entry))
            pos_err.append(float(np.linalg.norm(got.apex_lps_mm - imp.apex_lps_mm)))
            print(f"{k:>4} {imp.id:>7} {true_dev:8.2f} {'yes':>6} {dev_err[-1]:7.2f} {true_ang:8.2f} {ang_err[-1]:7.2f}"
                  + (f"  {got.note}" if got.note else ""))
    n_impl = args.cases * len(plan.implants)

    def line(name, vals, unit):
        v = np.asarray(vals)
        return f"{name:<34} median {np.median(v):6.2f}  max {v.max():6.2f} {unit}"

    print(f"\nfamily {args.family}, seed {args.seed}: {args.cases} cases, {len(dev_err)} of {n_impl} implants found, "
          f"{extra_pieces} extra metal pieces")
    print(line("|apex deviation error|", dev_err, "mm"))
    print(line("|angle error|", ang_err, "deg"))
    print(line("|entry deviation error|", entry_err, "mm"))
    print(line("apex position error (plan frame)", pos_err, "mm"))
    print(line("registration rotation error", reg_rot, "deg"))
    print(line("registration error at the apexes", reg_tre, "mm"))
    print(line("time per case", secs, "s"))


if __name__ == "__main__":
    main()
