"""The same shots registered from DICOM (header geometry and start) and from video.

For ``--n`` shots of the real 3 mm CT (``tests/data/real_ct``) with its plan: a lateral,
inlet or outlet view of a random planned implant at a *true* pose that is the planned view
moved by up to +-5 deg and +-10 mm (as in ``benchmarks/registration.py``), simulated once
(:func:`or_assist.sim.shots.simulate.simulate_shot`, Siemens Cios Fusion at 512 px) and
registered twice:

* **video**: the 1920 x 1080 video frame, the calibrated video geometry, started from the
  planned view (all a video shot tells);
* **DICOM**: the detector signal written by the simulated C-arm as a 12-bit XA object
  (:mod:`or_assist.sim.dicom_carm`) whose positioner angles are the true beam's plus a
  readout error (normal, ``--angle-sd-deg``, default 1 deg), read back with
  :func:`or_assist.dicom.read_dicom_shot` / :func:`or_assist.video.shot_files.read_shot_image`,
  with the header's geometry and start (:func:`or_assist.dicom.start_pose_from_header`
  through the implant's midpoint: the table position is not known).

Reported for each: success (mean target error < 2 mm over the implants' entry and apex
points), the method's own success flag, false confidence, the start's and the result's
target error, and wall time (median, 95th percentile; the default 3 s budget).

Run from the repository root::

    python benchmarks/dicom_shots.py --n 12
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from or_assist.core.carm_profiles import load_profile  # noqa: E402
from or_assist.core.ct.load import load_ct  # noqa: E402
from or_assist.core.plan import load_plan  # noqa: E402
from or_assist.core.view_poses import plan_view_pose  # noqa: E402
from or_assist.dicom import (geometry_from_header, positioner_angles_from_beam, read_dicom_header,  # noqa: E402
                             start_pose_from_header)
from or_assist.register.pipeline import Registrar  # noqa: E402
from or_assist.register.pose_params import apply_update, isocenter_source_mm, target_error_mm  # noqa: E402
from or_assist.register.settings import RegistrationSettings  # noqa: E402
from or_assist.render.drr import AttenuationVolume, DRRRenderer  # noqa: E402
from or_assist.sim.dicom_carm import simulated_shot_dataset  # noqa: E402
from or_assist.sim.shots.settings import ShotSettings  # noqa: E402
from or_assist.sim.shots.simulate import simulate_shot  # noqa: E402
from or_assist.video.shot_files import read_shot_image  # noqa: E402

REAL_CT = REPO_ROOT / "tests" / "data" / "real_ct" / "ct_abdomen_pelvis_3mm.nii.gz"
REAL_PLAN = REPO_ROOT / "tests" / "data" / "real_ct_plan.json"
KINDS = ("lateral", "inlet", "outlet")
SUCCESS_MM = 2.0


def summary(name: str, rows: list) -> str:
    """One table row: success, flag, false confidence, errors and time."""
    ok = np.array([r["mtre"] < SUCCESS_MM for r in rows])
    flag = np.array([r["success"] for r in rows])
    t = np.array([r["seconds"] for r in rows])
    start = np.array([r["mtre0"] for r in rows])
    err = np.array([r["mtre"] for r in rows])
    return (f"| {name} | {len(rows)} | {ok.mean():.0%} | {flag.mean():.0%} | {(flag & ~ok).mean():.0%} | "
            f"{np.median(start):.1f} | {np.median(err):.2f} | {np.median(t):.2f} | {np.percentile(t, 95):.2f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12, help="shots (default 12)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--angle-sd-deg", type=float, default=1.0, help="positioner readout error (default 1 deg)")
    ap.add_argument("--time-budget-s", type=float, default=None,
                    help="registration time budget (default the pipeline's 3 s; 0: no limit)")
    args = ap.parse_args(argv)
    ct, plan = load_ct(REAL_CT), load_plan(REAL_PLAN)
    geometry = load_profile("siemens_cios_fusion").geometry_at(512)
    renderer = DRRRenderer(AttenuationVolume.from_ct(ct))
    points = np.array([p for imp in plan.implants for p in (imp.entry_lps_mm, imp.apex_lps_mm)])
    center = isocenter_source_mm(geometry)
    rng = np.random.default_rng(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="or_assist_dicom_bench_"))
    settings = RegistrationSettings() if args.time_budget_s is None else \
        RegistrationSettings(time_budget_s=args.time_budget_s or None)
    video_reg = dicom_reg = None
    rows = {"video": [], "DICOM": []}
    for k in range(args.n):
        kind = KINDS[k % 3]
        imp = plan.implants[int(rng.integers(len(plan.implants)))]
        planned = plan_view_pose(plan, imp.id, kind, geometry=geometry)
        true = apply_update(planned, np.r_[rng.uniform(-5, 5, 3), rng.uniform(-10, 10, 3)], center)
        shot = simulate_shot(renderer, true, geometry, settings=ShotSettings(frame_size_px=(1920, 1080),
                                                                             seed=int(rng.integers(2**31))))
        primary, secondary = positioner_angles_from_beam(true.beam_direction_lps)
        noise = rng.normal(0.0, args.angle_sd_deg, 2)
        path = tmp / f"shot{k}.dcm"
        simulated_shot_dataset(shot, bits_stored=12, angles_deg=(primary + noise[0], secondary + noise[1])).save_as(
            path, enforce_file_format=True)
        header = read_dicom_header(path)
        image = read_shot_image(path)
        dgeom = geometry_from_header(header, image.shape)
        dstart = start_pose_from_header(header, (imp.entry_lps_mm + imp.apex_lps_mm) / 2, dgeom)
        if video_reg is None:
            video_reg = Registrar(renderer, shot.video_geometry, settings)
            dicom_reg = Registrar(renderer, dgeom, settings)
        for name, reg, frame, start in (("video", video_reg, shot.frame, planned),
                                        ("DICOM", dicom_reg, image, dstart)):
            res = reg.register(frame, start)
            pose = res.pose if res.pose is not None else start
            row = {"mtre0": target_error_mm(start, true, points), "mtre": target_error_mm(pose, true, points),
                   "success": bool(res.success), "seconds": res.seconds}
            rows[name].append(row)
            print(f"  {k:3d} {kind:7s} {name:5s} start {row['mtre0']:5.1f} mm -> {row['mtre']:6.2f} mm "
                  f"ok={int(row['success'])} {row['seconds']:.2f} s {'' if res.success else res.reason}", flush=True)
    print("\n| input | shots | success (< 2 mm) | flagged success | false confidence | start error "
          "(median mm) | error (median mm) | time median (s) | time p95 (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(summary(name, r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
