"""Accuracy and speed of the post-op CT evaluation on synthetic cases from the real CT.

Each case: the plan's three implants placed with random apex shifts (sigma 2.5 mm per
axis) and tilts (0-6 deg), the real 3 mm CT (cropped to the pelvis, with the left hip
prosthesis) moved by a random rigid motion (sigma 3 deg, 5 mm), titanium burnt in with
partial volume, 1 mm blur, clipping at 3071 HU, 10 HU noise and 100 HU streaks; every
other case also in other scanner coordinates (origin moved by 300 mm). Prints, per
implant, the error of the recovered apex deviation and angle against the truth (median,
max), the registration error (rotation, and at the planned apexes) and the time per case.

    python benchmarks/postop_accuracy.py [--cases 10] [--seed 0] [--rot-sd-deg 3] [--shift-sd-mm 5]
                                         [--check-perturbed] [--via-dicom]

``--rot-sd-deg`` / ``--shift-sd-mm`` widen the patient motion. A refused registration
(``InputError``) is counted and its reason printed; accepted registrations more than
1 deg / 1 mm off are counted as confident misregistrations. ``--check-perturbed`` also
runs the acceptance check (:func:`or_assist.postop.register3d.check_registration`) on
each case at the true pose and at poses 2 deg / 2 mm and 5 deg / 6 mm off in random
directions, and prints the accept rates.

``--family NAME`` (a key of ``or_assist.sim.postop_ct.APPEARANCE_FAMILIES``: standard,
cannulated, metal_2000 ... metal_4000, clip_3071, cannulated_2500) sets the implants'
and scanner's appearance; extra metal pieces near the plan are counted too.

Segmentation across families (issue 19; metal threshold, channel filling, hysteresis
grouping and piece merging were set on test case A, seed 5 and seed 11, the merge rule
also on seed 23; reported on seed 37, held out), 4 cases x 3 implants per family:

    for f in standard cannulated cannulated_2500 metal_2000 metal_2500 metal_3000 \
             metal_4000 clip_3071; do python benchmarks/postop_accuracy.py --cases 4 --seed 37 --family $f; done

every family 12 of 12 found, 0 extra pieces; |apex deviation error| median 0.04-0.13 mm,
max 0.08-0.18 mm and |angle error| median 0.05-0.19 deg, max 0.15-0.25 deg, except
cannulated_2500 (max 0.84 mm, 3.08 deg: the solid-prism model misfits a faint
cannulated implant in one case). Before (fixed 2500 HU): no implant found at 2000 HU.
(Measured before the registration check was merged; rerun after it for cannulated_2500 and
metal_2000: the same figures.)

Scanner families (``or_assist.sim.postop_scanner.SCANNER_FAMILIES``: the post-op CT on the
scanner's own grid with its slice profile, tilt, blooming, streaks and motion; docs/postop_evaluation.md)
are picked the same way; ``--families a,b,c`` runs several and prints one row per family:
implants found / planned, extra pieces, |apex deviation error| and |angle error| median/max,
registrations refused / run, accepted ones more than 1 deg / 1 mm off, the largest
registration error of the accepted ones, and wall / CPU (all threads) seconds per case
(median). Scanner cases keep their own frame (no origin shift on odd cases; ``flipped`` and
``mixed`` move the origin themselves).

Scanner families, held out (issue 19, items 1 and 3): no parameter was set on these seeds; the
families were run once on seed 7 (1 case each) while the code was built, then on seed 51
(2 cases per family) and, after the fix that seed 51 showed (below), on seed 53 for the
families whose registration that fix can change. Load on the 2 shared cores 8-15, so wall
seconds are inflated 2-5x; CPU seconds (all threads) bound the wall time on 2 idle cores:

    python benchmarks/postop_accuracy.py --cases 2 --seed 51 --families thin_0.6,fine_0.5,thick_3,\
        thick_3_tilt_20,tilt_30,sheared_tilt_15,flipped,bloom,streaks,motion_15_50,cannulated_1mm,mixed

    family           found extra apex med/max mm angle med/max deg refused acc>1 reg max deg/mm  wall/CPU s (CPU max)
    thin_0.6           6/6     0       0.06/0.09         0.03/0.08   0/2       0      0.10/0.03   129/20 (20)
    fine_0.5           6/6     0       0.09/0.14         0.05/0.11   0/2       0      0.13/0.03   156/28 (29)
    thick_3            6/6     0       0.07/0.23         0.19/0.30   0/2       0      0.15/0.11     33/8 (9)
    thick_3_tilt_20    6/6     0       0.04/0.13         0.05/0.14   0/2       0      0.16/0.10    36/9 (10)
    tilt_30            6/6     0       0.05/0.13         0.08/0.21   0/2       0      0.09/0.02   40/12 (13)
    sheared_tilt_15    0/6     0               -                 -   2/2       0              -     15/5 (5)
    flipped            6/6     0       0.09/0.12         0.04/0.08   0/2       0      0.10/0.03   26/12 (12)
    bloom              6/6     0       0.06/0.16         0.03/0.13   0/2       0      0.11/0.04   38/18 (18)
    streaks            6/6     0       0.07/0.08         0.04/0.10   0/2       0      0.13/0.04   48/17 (19)
    motion_15_50       3/6     0       0.05/0.10         0.05/0.06   1/2       0      0.13/0.02     28/8 (10)
    cannulated_1mm     6/6     0       0.02/0.04         0.04/0.07   0/2       0      0.12/0.04   53/16 (17)
    mixed              6/6     0       0.12/0.23         0.07/0.23   0/2       0      0.16/0.08   78/19 (30)

``sheared_tilt_15`` (a tilted series read without tilt correction) is refused by design, as
sheared, with what to do. ``motion_15_50`` case 0 (14.7 deg) was refused: its first result
gained overlap from a shear and was refused as sheared *without* the multi-start (fixed:
the multi-start now always runs; that case now registers after the multi-start, 0.06 deg / 0.02 mm off, implants
within 0.09 mm / 0.06 deg, but at 55 s CPU: over the 30 s target). Seed 53 after the fix (2 cases each):

    python benchmarks/postop_accuracy.py --cases 2 --seed 53 --families motion_15_50,sheared_tilt_15,mixed

    family           found extra apex med/max mm angle med/max deg refused acc>1 reg max deg/mm  wall/CPU s (CPU max)
    motion_15_50       6/6     0       0.06/0.07         0.04/0.10   0/2       0      0.14/0.03    50/10 (11)
    sheared_tilt_15    0/6     0               -                 -   2/2       0              -   107/37 (40)
    mixed              6/6     0       0.10/0.14         0.04/0.16   0/2       0      0.16/0.09    11/10 (10)

(one of the two sheared cases was refused as a rigid misregistration, not as sheared: refused,
but with the less useful hint; the sheared refusals now run the multi-start: 37-40 s CPU)

Every accepted registration was within 0.16 deg / 0.11 mm at the planned apexes; none
accepted more than 1 deg / 1 mm off. The other families' cases all registered at the
first start, a path the fix does not change.

``--via-dicom`` writes each scanner family's post-op as a DICOM series (pydicom, slices at
their true positions: a ``sheared`` family's step along the table) and reads it back with
``load_ct``, as ``or-assist evaluate --postop DIR`` does; ``tilted_dicom_15`` / ``tilted_dicom_25``
always go that way (gantry-tilted series that the reader resamples). Held-out seed 71, run once
(load 6-12; docs/postop_evaluation.md, "Gantry-tilted series"):

    python benchmarks/postop_accuracy.py --cases 2 --seed 71 --via-dicom \
        --families tilted_dicom_15,tilted_dicom_25,thick_3_tilt_20,tilt_30

    family             found extra apex med/max mm angle med/max deg refused acc>1 reg max deg/mm   s/cpu-s
    tilted_dicom_15    6/6       0       0.09/0.18         0.05/0.06   0/2       0      0.13/0.03     42/18
    tilted_dicom_25    3/6       0       0.25/0.31         0.07/0.14   1/2       0      0.16/0.08    120/33
    thick_3_tilt_20    6/6       0       0.01/0.12         0.08/0.15   0/2       0      0.17/0.08     73/18
    tilt_30            6/6       0       0.01/0.10         0.08/0.28   0/2       0      0.10/0.03     78/24

(tilted_dicom_25 case 1, 9.6 deg motion, refused: the registration's identity start wins on the
resampled box with its air wedges; the same case on a straight grid registers.)

Implant designs (issue 19, item 2: channel term, coating growth and Huber loss in the
prism fit, touching implants split; set on seed 37 and case A, seed 41 used to diagnose;
families fenestrated, porous, fenestrated_cannulated, porous_cannulated_2500,
fenestrated_cannulated_2500 added), reported on held-out seeds 47 and 59, run once:

    for s in 47 59; do for f in fenestrated porous fenestrated_cannulated porous_cannulated_2500 \
        fenestrated_cannulated_2500 cannulated_2500 cannulated standard metal_2000 metal_2500 metal_3000 \
        metal_4000 clip_3071; do python benchmarks/postop_accuracy.py --cases 4 --seed $s --family $f; done; done

all 12 of 12 found, 0 extra pieces, |apex deviation error| max <= 0.49 mm, |angle error|
max <= 0.84 deg, apex position error max <= 0.53 mm, in every family on both seeds except:
cannulated_2500 (seed 47: 1 extra piece; seed 59: one implant 3.76 mm / 7.41 deg, its
correct prism fit rejected for turning 9 deg from a bad principal-axis start) and
fenestrated_cannulated_2500 (4-7 extra pieces: its metal stays under the 1800 HU floor at
3 mm voxels). Time per case 7-30 s (porous 21-30 s) at a load of 8-18 on 2 cores. Table
per family and seed: docs/postop_implant_designs.md.

Registration capture and time (issue 19: a global stage, rotation grid x FFT shift search of
the bone masks, :mod:`or_assist.postop.register_global`; the optimiser's images smoothed once
per level; the check asks a 0.02 Dice lead). Diagnosed on seeds 67 (motion_15_50 case 1,
11.6 deg / 42 mm, refused before), 61, 51 and ``--rot-sd-deg 9 --shift-sd-mm 25`` seed 4;
reported on fresh seeds 79 and 83, run once on the final code (load 4-8 on the 2 shared
cores, tests running beside it: wall and CPU inflated; CPU of all threads; flipped and mixed
rerun alone after the run was terminated from outside):

    python benchmarks/postop_accuracy.py --cases 2 --seed 79 --families standard,motion_15_50,thin_0.6,\
        fine_0.5,thick_3_tilt_20,tilt_30,flipped,mixed
    python benchmarks/postop_accuracy.py --cases 3 --seed 83 --families motion_15_50,sheared_tilt_15

    family           found extra apex med/max mm angle med/max deg refused acc>1 reg max deg/mm  wall/CPU s
    standard           6/6     0       0.06/0.16         0.11/0.16   0/2       0      0.15/0.10      14/8
    motion_15_50       6/6     0       0.04/0.07         0.02/0.08   0/2       0      0.06/0.02     44/26
    thin_0.6           6/6     0       0.01/0.05         0.01/0.01   0/2       0      0.07/0.02     68/35
    fine_0.5           6/6     0       0.03/0.07         0.03/0.04   0/2       0      0.09/0.02     83/55
    thick_3_tilt_20    6/6     0       0.05/0.14         0.02/0.22   0/2       0      0.11/0.04     24/20
    tilt_30            6/6     0       0.04/0.08         0.04/0.09   0/2       0      0.07/0.01     29/26
    flipped            6/6     0       0.03/0.07         0.01/0.04   0/2       0      0.05/0.01     17/30
    mixed              6/6     0       0.04/0.07         0.01/0.05   0/2       0      0.09/0.02     11/19
    motion_15_50 (83)  9/9     0       0.04/0.08         0.04/0.07   0/3       0      0.11/0.02     25/26
    sheared_tilt_15 (83) -     0               -                 -   3/3       0              -     15/19

every case registered at the first pass (motions 10-15 deg / 38-53 mm), none accepted
> 1 deg / 1 mm off, the sheared series refused as sheared. Time at a load of 2-4 (seed 79,
one case each): thin_0.6 36 s, fine_0.5 70 s, motion_15_50 25 s wall: thin and fine stay over
30 s by the prism fit and channel filling (the registration is 4-6 CPU s). Seeds 71/73 (before
the 0.02 lead) and the before/after table: docs/postop_evaluation.md.

Faint hollow implants (issue 19: fenestrated_cannulated_2500 broke into 2-5 rods under the
1800 HU floor, 4 extra pieces and one implant 12.5 mm / 10.7 deg off on seed 67): the
implants are now taken from the metal the pre-op lacks (post-op minus the registered pre-op,
``or_assist/postop/added.py``; diagnosed on seeds 67, 59, 41, 47), reported once on fresh
seeds 71 and 73, every implant-design family, and on seed 71 the scanner families thick_3,
bloom, streaks, mixed:

    F=standard,cannulated,cannulated_2500,metal_2000,metal_2500,metal_3000,metal_4000,clip_3071,\
fenestrated,porous,fenestrated_cannulated,porous_cannulated_2500,fenestrated_cannulated_2500
    python benchmarks/postop_accuracy.py --cases 2 --seed 71 --families $F,thick_3,bloom,streaks,mixed
    python benchmarks/postop_accuracy.py --cases 2 --seed 73 --families $F

every implant of every family on both seeds found (180 of 180), no extra piece, registration
never accepted off; |apex deviation error| median <= 0.14 mm, max <= 0.99 mm and |angle error|
median <= 0.27 deg, max <= 1.30 deg (both worst: fenestrated, seed 73, one implant that the old
code fitted to 0.20 mm / 0.48 deg: the added-metal start led its fit elsewhere);
fenestrated_cannulated_2500 0.09/0.21 mm, 0.15/0.49 deg (seed 71) and 0.04/0.12 mm,
0.17/0.40 deg (seed 73). metal_2000 seed 73 case 0, where the old code lost one implant: 6/6.
Wall / CPU seconds per case (median) 8-39 / 5-51 at a load of 4-12 on the 2 shared cores.
Table: docs/postop_implant_designs.md.
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
from or_assist.core.pose import Pose, rotation_angle_deg  # noqa: E402
from or_assist.errors import InputError  # noqa: E402
from or_assist.core.plan import load_plan  # noqa: E402
from or_assist.postop.evaluate import evaluate_case  # noqa: E402
from or_assist.sim.postop_ct import (APPEARANCE_FAMILIES, appearance_kwargs, perturbed_implant,  # noqa: E402
                                     rigid_motion, synthesize_postop_ct)
from or_assist.sim.postop_scanner import (SCANNER_FAMILIES, scanner_family, scanner_motion,  # noqa: E402
                                          scanner_postop_ct)

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--family", default="standard", choices=sorted(APPEARANCE_FAMILIES) + sorted(SCANNER_FAMILIES),
                    help="appearance of the implants and scanner (default: standard)")
    ap.add_argument("--families", default="",
                    help="comma-separated families (appearance or scanner); one summary row per family")
    ap.add_argument("--ct", default=str(ROOT / "tests" / "data" / "real_ct" / "ct_abdomen_pelvis_3mm.nii.gz"))
    ap.add_argument("--plan", default=str(ROOT / "tests" / "data" / "real_ct_plan.json"))
    ap.add_argument("--rot-sd-deg", type=float, default=3.0, help="sigma of the motion's rotations, deg")
    ap.add_argument("--shift-sd-mm", type=float, default=5.0, help="sigma of the motion's shifts, mm")
    ap.add_argument("--check-perturbed", action="store_true",
                    help="accept rates of the registration check at the truth and at 2/2 and 5/6 deg/mm off")
    ap.add_argument("--via-dicom", action="store_true",
                    help="scanner families: write each post-op as a DICOM series (slices at their true, possibly "
                         "tilted, positions) and read it back with load_ct, as `or-assist evaluate --postop DIR`")
    args = ap.parse_args()
    families = [f for f in args.families.split(",") if f] or [args.family]
    for f in families:
        if f not in APPEARANCE_FAMILIES and f not in SCANNER_FAMILIES:
            ap.error(f"unknown family {f!r}")
    ct = load_ct(args.ct)
    plan = load_plan(args.plan)
    rows = [run_family(f, args, ct, plan) for f in families]
    if len(rows) > 1:
        print(f"\nseed {args.seed}, {args.cases} cases per family")
        print(f"{'family':<16} {'found':>7} {'extra':>5} {'apex med/max mm':>15} {'angle med/max deg':>17} "
              f"{'refused':>7} {'acc>1':>5} {'reg max deg/mm':>14} {'s/cpu-s':>9}")
        for r in rows:
            print(r)


def _scanner_case(ct, plan, placed, rng, args, family, k):
    """(post-op CT, true T_postop_from_preop) of a scanner family case (its own grid)."""
    model = scanner_family(family)
    motion = scanner_motion(model, rng, (0.0, -100.0, 210.0))
    if motion is None:
        motion = rigid_motion(rng.normal(0, args.rot_sd_deg, 3), rng.normal(0, args.shift_sd_mm, 3),
                              centre_mm=(0.0, -100.0, 210.0))
    post, truth = scanner_postop_ct(ct, placed, motion, model, seed=k)
    if args.via_dicom or model.dicom:
        post = _via_dicom(post, model, k)
    return post, truth


def _via_dicom(post, model, k):
    """The post-op written as a DICOM series and read back through the project's reader (prints what it said)."""
    import tempfile

    from or_assist.sim.ct_series import postop_via_dicom

    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="postop_dicom_") as folder:
        read, notes = postop_via_dicom(post, model, folder)
    print(f"{k:>4} DICOM series {post.hu.shape[::-1]} written and read back as {read.hu.shape[::-1]} in "
          f"{time.perf_counter() - t0:.1f} s ({time.process_time() - c0:.1f} s CPU)"
          + "".join(f"; {n.split(': ', 1)[-1]}" for n in notes))
    return read


def run_family(family, args, ct, plan) -> str:
    """Run the cases of one family (prints per case); returns the summary row."""
    pelvis = crop_ct(ct, [-160.0, -280.0, 94.0], [160.0, -20.0, 300.0])
    rng = np.random.default_rng(args.seed)
    apexes = np.array([i.apex_lps_mm for i in plan.implants])
    dev_err, ang_err, entry_err, pos_err, reg_rot, reg_tre, secs, cpu = [], [], [], [], [], [], [], []
    extra_pieces = 0
    check_rng = np.random.default_rng(args.seed + 10_000)     # own stream: the cases do not change
    multistart, skipped, motions = [], [], []
    refused, confident_wrong, check_rates = [], [], {"true": [], "2deg/2mm": [], "5deg/6mm": []}
    scanner = family in SCANNER_FAMILIES
    print(f"== family {family}\n{'case':>4} {'implant':>7} {'true dev':>8} {'found':>6} {'dev err':>7} "
          f"{'true ang':>8} {'ang err':>7}")
    for k in range(args.cases):
        placed = [perturbed_implant(i, rng.normal(0, 2.5, 3), rng.uniform(0, 6)) for i in plan.implants]
        try:
            if scanner:
                post, motion = _scanner_case(ct, plan, placed, rng, args, family, k)
            else:
                motion = rigid_motion(rng.normal(0, args.rot_sd_deg, 3), rng.normal(0, args.shift_sd_mm, 3),
                                      centre_mm=(0.0, -100.0, 210.0))
                post = synthesize_postop_ct(pelvis, placed, motion, noise_hu=10.0, streak_hu=100.0, seed=k,
                                            **appearance_kwargs(family))
        except InputError as exc:      # a large motion moved an implant out of the CT / field of view
            print(f"{k:>4} SKIPPED (not synthesised): {exc}")
            skipped.append(k)
            continue
        motions.append((rotation_angle_deg(np.eye(3), motion.rotation),
                        float(np.linalg.norm(motion.apply(apexes.mean(0)) - apexes.mean(0)))))
        if k % 2 and not scanner:
            shift = np.array([0.0, -150.0, 300.0])
            post = CTVolume(post.hu, post.origin_mm + shift, post.spacing_mm, post.direction, source=post.source)
            motion = Pose.from_rotation_translation(np.eye(3), shift).compose(motion)
        if args.check_perturbed:
            _check_perturbed(ct, plan, post, motion.inverse(), apexes, check_rng, check_rates)
        t0, c0 = time.perf_counter(), time.process_time()
        true_rot = rotation_angle_deg(np.eye(3), motion.rotation)
        try:
            ev = evaluate_case(plan, post, ct)
        except InputError as exc:
            secs.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            refused.append(k)
            print(f"{k:>4} REFUSED (motion {true_rot:.1f} deg, {secs[-1]:.0f} s): {exc}")
            continue
        secs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        extra_pieces += len(ev.extra)
        T = ev.registration.T_preop_from_postop
        if ev.registration.details.get("refined", 1) > 1:
            multistart.append(k)
        reg_rot.append(rotation_angle_deg(T.rotation, motion.inverse().rotation))
        reg_tre.append(float(np.linalg.norm(T.apply(motion.apply(apexes)) - apexes, axis=1).max()))
        if reg_rot[-1] > 1.0 or reg_tre[-1] > 1.0:
            confident_wrong.append(k)
            print(f"{k:>4} ACCEPTED BUT OFF: {reg_rot[-1]:.2f} deg, {reg_tre[-1]:.2f} mm (motion {true_rot:.1f} deg)")
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
        print(f"{k:>4} registration {reg_rot[-1]:.2f} deg / {reg_tre[-1]:.2f} mm off (motion {true_rot:.1f} deg, "
              f"{motions[-1][1]:.0f} mm), {secs[-1]:.1f} s ({cpu[-1]:.1f} s CPU), extra pieces {len(ev.extra)}")
    n_impl = (args.cases - len(skipped)) * len(plan.implants)

    def line(name, vals, unit):
        v = np.asarray(vals)
        return f"{name:<34} median {np.median(v):6.2f}  max {v.max():6.2f} {unit}"

    print(f"\nfamily {family}, seed {args.seed}: {args.cases - len(skipped)} cases ({len(skipped)} skipped), "
          f"{len(dev_err)} of {n_impl} implants found, {extra_pieces} extra metal pieces")
    if motions:
        m = np.array(motions)
        print(f"patient motion: rotation max {m[:, 0].max():.1f} deg, median {np.median(m[:, 0]):.1f}; "
              f"shift at the implants max {m[:, 1].max():.1f} mm (before any frame shift)")
    print(f"registrations refused: {len(refused)} {refused}; accepted but > 1 deg / 1 mm off: "
          f"{len(confident_wrong)} {confident_wrong}; registered after multi-start: {multistart}")
    for name, got in check_rates.items():
        if got:
            print(f"check at {name:<9} accepted {sum(got)} of {len(got)}")
    n_acc = len(refused) + len(reg_rot)

    def mm(v):
        return f"{np.median(v):.2f}/{np.max(v):.2f}" if len(v) else "-"

    row = (f"{family:<16} {len(dev_err):>3}/{n_impl:<3} {extra_pieces:>5} {mm(dev_err):>15} {mm(ang_err):>17} "
           f"{len(refused):>3}/{n_acc:<3} {len(confident_wrong):>5} "
           f"{(f'{max(reg_rot):.2f}/{max(reg_tre):.2f}' if reg_rot else '-'):>14} "
           f"{(f'{np.median(secs):.0f}/{np.median(cpu):.0f}' if secs else '-'):>9}")
    if dev_err:
        print(line("|apex deviation error|", dev_err, "mm"))
        print(line("|angle error|", ang_err, "deg"))
        print(line("|entry deviation error|", entry_err, "mm"))
        print(line("apex position error (plan frame)", pos_err, "mm"))
        print(line("registration rotation error", reg_rot, "deg"))
        print(line("registration error at the apexes", reg_tre, "mm"))
    if secs:
        print(line("time per case", secs, "s"))
        print(line("CPU time per case (all threads)", cpu, "s"))
    return row


def _check_perturbed(ct, plan, post, true, apexes, rng, rates) -> None:
    """Run the acceptance check at the true pose and at random 2/2 and 5/6 deg/mm misregistrations."""
    from or_assist.core.ct.load import crop_ct
    from or_assist.postop.evaluate import _plan_box
    from or_assist.postop.register_check import check_registration

    lo, hi = _plan_box(plan)
    roi = crop_ct(ct, lo, hi, margin_mm=60.0)
    centre = apexes.mean(0)
    for name, deg, mm in (("true", 0.0, 0.0), ("2deg/2mm", 2.0, 2.0), ("5deg/6mm", 5.0, 6.0)):
        for _ in range(1 if name == "true" else 3):
            u, v = rng.normal(size=3), rng.normal(size=3)
            off = rigid_motion(deg * u / np.linalg.norm(u), mm * v / np.linalg.norm(v), centre_mm=centre)
            rates[name].append(check_registration(roi, post, off.compose(true), centre_mm=centre).accepted)


if __name__ == "__main__":
    main()
