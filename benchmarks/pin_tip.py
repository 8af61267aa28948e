"""Pin-tip accuracy and honesty of the one-shot cue, per shot family.

Every shot goes through what the OR display and ``or-assist pin`` share
(:func:`or_assist.guidance.shot_guidance.guide_shot` on the shot preprocessed as the live
pipeline does it: ``crop_to_field=False``, polarity detected) with the shot's true pose.
Families:

* ``demo``: the OR demo's own scripted shots (sample pelvis, 1920 x 1080,
  :func:`or_assist.sim.pin_cases.demo_shots`), exposures seeded by the seed;
* ``demo-random``: the demo's steps with random pins (20-100 % advanced, tip up to 5 mm
  off, 0-8 deg) and the C-arm up to 3 deg off each view;
* ``real``: simulated inlet, outlet and lateral shots of the real CT
  (:func:`or_assist.sim.pin_cases.make_case`: tip 0-10 mm off, 0-10 deg, 60-100 %
  advanced, other implants placed in 30 % of the cases; the lateral sees the axis end on);
* ``real-sleeve``: the same with an 8 mm steel sleeve over the pin's back part;
* ``real-cone``: the same with a pointed (trocar) tip of 2-6 mm axial length (drawn per
  case from its own generator, so the case is the real family's), which the detector is
  not told about;
* ``demo-free`` and ``real-free``: the same shots without a pin (false detections).

Reported per family: pins detected, tips claimed seen, the tip error of the claimed-seen
tips (mm at the tip's depth: median, 90th percentile, max), the error of the remaining
depth the cue gave, and **depth cues from an unseen tip**: cues with an advance / depth
line whose tip was not where the pin's tip is (more than 2 mm off) or whose true tip
lies outside the usable pixels; it must be 0. On pin-free shots: detections and cues.

The detector's thresholds were calibrated on seeds 1000-1011 (real), the demo's exposures
of seed 0 and the demo's pin-free shots at pose errors (seed 5); report on other seeds::

    python benchmarks/pin_tip.py --seed 4000 --real 8 --sleeve 4 --demo 1

Before issue 16's walk fix (seeds 4000, held out; 174 s on 2 shared cores), tip error of the claimed-seen
tips in mm, median / p90 / max: demo 0.06 / 0.19 / 0.28 (18 of 18 seen), demo-random
0.12 / 0.21 / 0.23 (17 of 18), real 0.24 / 0.33 / 0.36 (20 of 24 detected: the four
missed are laterals whose pin, seen end on, is hardly longer than wide; 17 seen),
real-sleeve 0.26 / 0.38 / 0.48 (7 of 12 detected: laterals and a bare pin lying on a
placed implant's edge); depth cues from an unseen tip 0; pin-free shots: 0 detections
in 42. The one-shot remaining depth is off by 0.3 mm (median; p90 1.9 mm: a pin off the
plan out of the image plane moves where its tip's ray meets the planned axis).
Seeds 5000 and 3000 were used to fix the tip walk (issue 16: the walk starts where the
run last shows the pin's two-sided signature and follows only the pin's metal, its
centre as dark as its own shaft; before, seed 5001 "L2: at the apex" took the tip 3.1 mm
too far on a bone band continuing the pin's line, 'advance 30 mm' with 33 mm left, and
the end-on lateral 5011 ran 33 mm along dark bone); they are no longer held out. On
them, after the fix: 0 depth cues from an unseen tip, 0 detections on 114 pin-free shots,
5 more tips seen than before (demo tips the walk had called hidden, now within 0.6 mm),
tip error max 0.40 mm (5000; before 3.1 and 33 mm) and 0.64 mm (3000; as before); the end-on
laterals whose point was 33 mm off are now 5003 seen (0.12 mm) and 5011 "seen end on:
which end is the tip is not clear" (its point 1.6 mm from the tip).

After that fix, held out (run once each)::

    python benchmarks/pin_tip.py --seed 6000 --real 12 --sleeve 4 --cone 6 --demo 2

(1784 s on 2 cores shared with other benchmarks, load 8-16), tip error of the
claimed-seen tips in mm, median / p90 / max: demo 0.07 / 0.22 / 0.32 (36 of 36 seen),
demo-random 0.08 / 0.20 / 0.39 (36 of 36), real 0.17 / 0.32 / 0.37 (32 of 36 detected, all
32 seen), real-sleeve 0.25 / 0.39 / 0.44 (8 of 12), real-cone 0.86 / 1.11 / 1.25 (16 of 18
detected, 15 seen: a point the detector is not told about is taken about a quarter of its
length short, so the depth cue says up to ~1.5 mm more than remains for a 6 mm point);
**depth cues from an unseen tip 0**; pin-free shots: 0 detections, 0 cues in 72.
Seeds 7000 (``--seed 7000 --real 8 --sleeve 4 --cone 4 --demo 1``, held out, 392 s):
demo 0.10 / 0.24 / 0.31 (18 of 18 seen), demo-random 0.06 / 0.21 / **1.99** (18 of 18),
real 0.19 / 0.33 / 0.41 (22 of 24 detected, 21 seen), real-sleeve 0.18 / 0.34 / 0.43
(8 of 12), real-cone 0.80 / 1.06 / 1.10 (11 of 12); depth cues from an unseen tip 0 and
0 detections in 42 pin-free shots, but the 1.99 mm tip is the same step as seed 5001's
("L2: at the apex", the pin advanced to its apex): taken 1.99 mm beyond the tip along the
pin's line and seen, 'advance 31 mm'; just inside this benchmark's 2 mm, not the ~1 mm the
issue asks for.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from or_assist.core.geometry import project_with_depth  # noqa: E402
from or_assist.guidance.shot_guidance import guide_shot  # noqa: E402
from or_assist.sim.pin_cases import demo_shots, make_case  # noqa: E402
from or_assist.video.preprocess.shot import PreprocessSettings, preprocess_shot  # noqa: E402

REAL_PLAN = REPO_ROOT / "tests" / "data" / "real_ct_plan.json"
LIVE = PreprocessSettings(polarity="auto", crop_to_field=False, undistort=False, mask_metal=False,
                          mask_saturated=False, normalise=False)
SEEN_MM = 2.0   # a claimed tip further than this from the true tip was not the tip


def judge(implant, shot, landmarks=None, label: str = "") -> dict:
    """One shot through guide_shot with its true pose; the row of the tables (``label``
    names the shot in the lines printed for a depth cue from an unseen tip)."""
    t0 = time.perf_counter()
    pre = preprocess_shot(shot.frame, shot.video_geometry, LIVE)
    g = guide_shot(pre, implant, shot.pose, landmarks)
    row = {"seconds": time.perf_counter() - t0, "detected": g.detection is not None, "cue": g.cue is not None,
           "claimed_seen": False, "tip_mm": None, "depth_cue": False, "depth_err_mm": None, "unseen_depth": False,
           "has_pin": shot.pin is not None}
    if g.cue is not None:
        row["depth_cue"] = any(w in s for s in g.cue.lines for w in ("advance", "planned apex", "planned depth"))
    if shot.pin is None or g.detection is None:
        return row
    det = g.detection
    tip_true = shot.pin_tip_px - np.asarray(pre.crop_px[:2], float)
    _, depth = project_with_depth(shot.pin.tip_lps_mm, shot.pose, pre.geometry)
    mm_px = pre.geometry.pixel_spacing_mm[0] * float(depth) / pre.geometry.sid_mm
    err = float(np.linalg.norm(det.tip_px - tip_true)) * mm_px
    h, w = g.valid_mask.shape
    u, v = int(round(tip_true[0])), int(round(tip_true[1]))
    visible = 0 <= u < w and 0 <= v < h and bool(g.valid_mask[v, u])
    row["claimed_seen"] = det.tip_seen
    if det.tip_seen:
        row["tip_mm"] = err
    if g.deviation is not None and g.deviation.remaining_depth_mm is not None:
        s_true = float((shot.pin.tip_lps_mm - implant.entry_lps_mm) @ implant.axis_unit)
        row["depth_err_mm"] = abs(g.deviation.remaining_depth_mm - (implant.length_mm - s_true))
    row["unseen_depth"] = row["depth_cue"] and (err > SEEN_MM or not visible)
    if row["unseen_depth"]:
        print(f"  depth cue from an unseen tip: {label}: tip {err:.1f} mm off"
              f"{'' if visible else ', true tip outside the usable pixels'}; cue: {'; '.join(g.cue.lines)}")
    return row


def cone_mm(seed: int) -> float:
    """The pointed tip's axial length of the real-cone case ``seed``, 2-6 mm."""
    return float(np.random.default_rng([seed, 7]).uniform(2.0, 6.0))


def _q(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


def report(name: str, rows: list[dict]) -> str:
    pins = [r for r in rows if r["has_pin"]]
    free = [r for r in rows if not r["has_pin"]]
    out = [f"{name:12s}"]
    if pins:
        tips = [r["tip_mm"] for r in pins if r["tip_mm"] is not None]
        depth = [r["depth_err_mm"] for r in pins if r["depth_err_mm"] is not None]
        out.append(f"pins {len(pins):3d}  detected {sum(r['detected'] for r in pins):3d}  tip seen "
                   f"{sum(r['claimed_seen'] for r in pins):3d}  tip error mm median {_q(tips, 50):5.2f} p90 "
                   f"{_q(tips, 90):5.2f} max {max(tips) if tips else float('nan'):5.2f}  depth cues "
                   f"{sum(r['depth_cue'] for r in pins):3d} (error mm median {_q(depth, 50):5.2f} p90 "
                   f"{_q(depth, 90):5.2f})  depth cues from an unseen tip {sum(r['unseen_depth'] for r in pins)}")
    if free:
        out.append(f"pin-free {len(free):3d}  detections {sum(r['detected'] for r in free)}  cues "
                   f"{sum(r['cue'] for r in free)}  depth cues {sum(r['depth_cue'] for r in free)}")
    return "  ".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=3000, help="first seed (the calibration used 1000-1011 and 0, 5)")
    ap.add_argument("--real", type=int, default=8, help="real-CT cases (3 views each, with and without a pin)")
    ap.add_argument("--sleeve", type=int, default=4, help="real-CT cases with an 8 mm sleeve")
    ap.add_argument("--demo", type=int, default=1, help="demo seeds (18 shots each: scripted, random, pin-free)")
    ap.add_argument("--cone", type=int, default=None,
                    help="real-CT cases with a pointed tip of 2-6 mm (default: as many as --sleeve)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    fam: dict[str, list] = {k: [] for k in ("demo", "demo-random", "demo-free", "real", "real-sleeve", "real-cone",
                                            "real-free")}
    for i in range(args.demo):
        s = args.seed + i
        for name, kw in (("demo", {}), ("demo-random", {"randomise": True}), ("demo-free", {"pin": False})):
            for item in demo_shots(s, **kw):
                fam[name].append(judge(item["implant"], item["shot"], item["landmarks"],
                                       f"{name} seed {s} {item['label']}"))
            print(f"  demo seed {s}: {name} done", flush=True)
    views = ("inlet", "outlet", "lateral")
    for i in range(args.real):
        s = args.seed + i
        for name, kw in (("real", {}), ("real-free", {"pin": False})):
            case = make_case(s, REAL_PLAN, views=views, **kw)
            fam[name] += [judge(case.implant, shot, label=f"{name} seed {s} {v}") for shot, v in zip(case.shots, views)]
        print(f"  real seed {s} done", flush=True)
    for i in range(args.sleeve):
        s = args.seed + i
        case = make_case(s, REAL_PLAN, views=views, sleeve_mm=8.0)
        fam["real-sleeve"] += [judge(case.implant, shot, label=f"real-sleeve seed {s} {v}")
                               for shot, v in zip(case.shots, views)]
        print(f"  sleeve seed {s} done", flush=True)
    for i in range(args.sleeve if args.cone is None else args.cone):
        s = args.seed + i
        cone = cone_mm(s)
        case = make_case(s, REAL_PLAN, views=views, tip_cone_mm=cone)
        fam["real-cone"] += [judge(case.implant, shot, label=f"real-cone seed {s} {v} (cone {cone:.1f} mm)")
                             for shot, v in zip(case.shots, views)]
        print(f"  cone seed {s} done", flush=True)
    all_rows = [r for rows in fam.values() for r in rows]
    print(f"\nPin tip benchmark, seeds from {args.seed} (held out from the calibration), "
          f"{time.perf_counter() - started:.0f} s, guide_shot median "
          f"{1000 * np.median([r['seconds'] for r in all_rows]):.0f} ms per shot")
    for name, rows in fam.items():
        if rows:
            print("  " + report(name, rows))
    print("  " + report("all", all_rows))
    print("  targets: tip error median <= 1 mm; depth cues from an unseen tip = 0; no cue on a pin-free shot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
