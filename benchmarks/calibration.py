"""C-arm calibration accuracy on simulated bead-phantom shots (issue "Calibration").

Each case renders the phantom of ``calibration/phantoms`` lying on the detector cover
(its centre a few mm off the central ray, turned in-plane) with the shot simulator
(``or_assist.sim.shots.simulate``: supersampled rays, focal-spot and detector blur, glare,
Poisson noise, range compression, collimation, burnt-in text, video framing), runs
:func:`or_assist.calibration.solve.calibrate`, and compares with the truth (the shot's
``video_geometry``). Target: rms reprojection error <= 0.3 px and SID within 1 %.

Columns: beads used; rms / max reprojection error (px); errors of SID, pixel spacing
(px, py, %) and principal point (px); ``model`` = the largest distance between where
the calibrated and the true geometry put a used bead (each with its own phantom pose);
``dist`` = the distortion model kept; ``time`` = the calibration (not the simulation).

A second table (:func:`dewarp_table`) covers intensifiers with an S-distortion: the plain
calibration against ``or-assist calibrate --dewarp`` with a mounted grid, and a second
grid image dewarped and checked against its true pose.

Run from the repository root::

    python benchmarks/calibration.py
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from or_assist.core.carm_profiles import load_profile  # noqa: E402
from or_assist.core.geometry import project
from or_assist.core.pose import Pose, rotation_about_axis
from or_assist.errors import InputError  # noqa: E402
from or_assist.render.drr import DRRRenderer  # noqa: E402
from or_assist.sim.shots.simulate import simulate_shot
from or_assist.sim.shots.settings import ShotSettings
from or_assist.calibration.solve import calibrate  # noqa: E402
from or_assist.calibration.phantom import load_bead_phantom  # noqa: E402
from or_assist.calibration.dewarp import in_plane_angle_rad  # noqa: E402
from or_assist.sim.calibration_phantom import bead_phantom_volume  # noqa: E402

II_K1 = [1.5, 0.0, 0.0, 0.0, 0.0]
II_S = [1.0, 4.0, 0.002, -0.0015, 0.0]   # pincushion plus decentring


def shot(renderer, phantom, profile, size_px=512, *, distortion=None, angle_deg=7.0, shift_mm=(3.0, -4.0),
         axis=(0, 0, 1), height_mm=0.0, pp_offset=(6.3, -4.1), seed=0, **settings):
    """(frame, true video geometry, true pose) of one simulated shot."""
    g = load_profile(profile).geometry_at(size_px)
    u0, v0 = g.principal_point_px
    g = g.with_changes(principal_point_px=(u0 + pp_offset[0], v0 + pp_offset[1]))
    depth = g.sid_mm - phantom.plate_to_detector_mm - height_mm
    pose = Pose.from_rotation_translation(rotation_about_axis(axis, math.radians(angle_deg)), [*shift_mm, depth])
    s = ShotSettings(ii_distortion=distortion, step_fraction=1.0, seed=seed, **settings)
    out = simulate_shot(renderer, pose, g, settings=s)
    return out.frame, out.video_geometry, pose


def rescale(frame, truth, sx, sy):
    """The frame resized by (sx, sy) as a grabber would, with its true geometry."""
    h, w = frame.shape
    size = (int(round(w * sx)), int(round(h * sy)))
    u0, v0 = truth.principal_point_px
    px, py = truth.pixel_spacing_mm
    return (cv2.resize(frame, size, interpolation=cv2.INTER_AREA),
            truth.with_changes(image_size_px=size, pixel_spacing_mm=(px / sx, py / sy),
                               principal_point_px=((u0 + 0.5) * sx - 0.5, (v0 + 0.5) * sy - 0.5)))


def row(name, frames, truth, poses, phantom, s2i, **kw):
    t0 = time.perf_counter()
    try:
        res = calibrate(frames, phantom, source_to_isocenter_mm=s2i, **kw)
    except InputError as exc:
        return f"| {name} | failed: {exc} |"
    dt = time.perf_counter() - t0
    g = res.geometry
    roi = kw.get("roi")
    ref = truth.cropped(*roi) if roi else truth
    model = 0.0
    for im, pose in zip(res.images, poses):
        if im.status == "ok":
            d = project(im.phantom_mm, im.pose, g) - project(im.phantom_mm, pose, ref)
            model = max(model, float(np.hypot(*d.T).max()))
    rms, mx = res.reprojection_error_px
    e_sid = 100 * (g.sid_mm / ref.sid_mm - 1)
    e_px = [100 * (a / b - 1) for a, b in zip(g.pixel_spacing_mm, ref.pixel_spacing_mm)]
    e_pp = float(np.hypot(*np.subtract(g.principal_point_px, ref.principal_point_px)))
    ok = "yes" if rms <= 0.3 and abs(e_sid) <= 1.0 else "NO"
    return (f"| {name} | {res.n_beads} | {rms:.3f} | {mx:.3f} | {e_sid:+.3f} | {e_px[0]:+.3f} / {e_px[1]:+.3f} "
            f"| {e_pp:.2f} | {model:.3f} | {res.distortion_model} | {dt:.2f} | {ok} |")


def _in_plane_deg(pose) -> float:
    return math.degrees(in_plane_angle_rad(pose.matrix[:3, :3]))


def dewarp_table(renderer, phantom) -> str:
    """Intensifiers with an S-distortion: the plain calibration against ``--dewarp``.

    Each case: the two-plane grid mounted on the cover at a known angle (known to within
    0.25 deg), pincushion k1 = 0.05 and an S-distortion of S px (detector pixels). Columns:
    the plain calibration's principal point and SID errors (or why it refused); with the
    dewarp, the same, and the field's residual (fit / cross-validated); then a second image
    of the grid (moved 10 mm, turned 5 deg, the same distortion), dewarped and calibrated
    plainly without a lens model: its residual and how far its fitted in-plane angle is
    from the truth (the twist the dewarp must include).
    """
    from or_assist.calibration.dewarp import calibrate_with_dewarp
    from or_assist.sim.calibration_phantom import simulate_phantom_on_cover

    rows = ["| S px | detector / frame | plain: pp err px, SID err % | dewarp: pp err px, SID err % | field rms fit / "
            "check px | 2nd image dewarped: rms px, angle err deg | time s |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    rng = np.random.default_rng(77)
    for s_px, det, frame in ((4.0, 1024, (1920, 1080)), (7.0, 768, (768, 576)), (10.0, 512, (768, 576)),
                             (10.0, 1024, (1920, 1080))):
        carm = load_profile("siemens_arcadis_varic").geometry_at(det)
        mount = float(rng.uniform(-20, 20))

        def image(angle, shift, seed):
            st = ShotSettings(ii_distortion=(0.05, 0, 0, 0, 0), s_distortion_px=s_px, frame_size_px=frame,
                              collimation="circle", collimation_radius_fraction=0.95, step_fraction=1.0, seed=seed)
            return simulate_phantom_on_cover(renderer, phantom, carm, st, angle_deg=angle, shift_mm=shift)

        (shot, _), (check, check_pose) = image(mount + float(rng.uniform(-0.25, 0.25)), (4, -3), 1), \
            image(mount + 5.0, (-6, 5), 2)
        truth = shot.video_geometry

        def errs(g):
            return (f"{np.hypot(*np.subtract(g.principal_point_px, truth.principal_point_px)):.2f}, "
                    f"{100 * (g.sid_mm / truth.sid_mm - 1):+.2f}")
        try:
            plain = errs(calibrate(shot.frame, phantom, source_to_isocenter_mm=600.0).geometry)
        except InputError as exc:
            plain = "refused: " + str(exc).split(": ", 1)[-1].split(":")[0]
        t0 = time.perf_counter()
        res, dw = calibrate_with_dewarp(shot.frame, phantom, source_to_isocenter_mm=600.0, mount_angle_deg=mount)
        dt = time.perf_counter() - t0
        again = calibrate(dw.apply(check.frame), phantom, source_to_isocenter_mm=600.0, distortion="none")
        angle = _in_plane_deg(again.images[0].pose) - _in_plane_deg(check_pose)
        rows.append(f"| {s_px:g} | {det} / {frame[0]}x{frame[1]} | {plain} | {errs(res.geometry)} | "
                    f"{dw.fit_rms_px:.3f} / {dw.check_rms_px:.3f} | {again.reprojection_error_px[0]:.3f}, {angle:+.3f} "
                    f"| {dt:.1f} |")
    return "\n".join(rows)


def main() -> int:
    two = load_bead_phantom("bead_grid_two_plane")
    one = load_bead_phantom("bead_grid_single_plane")
    t0 = time.perf_counter()
    r2 = DRRRenderer(bead_phantom_volume(two))
    r1 = DRRRenderer(bead_phantom_volume(one))
    print(f"phantom volumes and renderers: {time.perf_counter() - t0:.1f} s")
    hd = dict(frame_size_px=(1920, 1080))
    rows = []

    f, t, p = shot(r2, two, "siemens_cios_fusion", collimation="square", **hd)
    rows.append(row("flat panel, Cios 512 px in 1920x1080", f, t, [p], two, 530.0))
    f, t, p = shot(r2, two, "siemens_cios_fusion", 1024, collimation=None, angle_deg=30.0)
    rows.append(row("flat panel, Cios 1024 px native", f, t, [p], two, 530.0))
    f, t, p = shot(r2, two, "siemens_cios_fusion", collimation="square", i0_photons_per_px=2000.0, seed=5, **hd)
    rows.append(row("flat panel, low dose (2000 photons/px)", f, t, [p], two, 530.0))
    f, t, p = shot(r2, two, "siemens_arcadis_varic", distortion=II_K1, angle_deg=-20.0, **hd)
    rows.append(row("II ARCADIS, k1 = 1.5, 1920x1080", f, t, [p], two, 600.0))
    rows.append(row("  same, --roi 560,140,800,800", f, t, [p], two, 600.0, roi=(560, 140, 800, 800)))
    fs, ts = rescale(f, t, 0.75, 1.0)
    rows.append(row("  same, grabber squeezes x by 0.75", fs, ts, [p], two, 600.0))
    fc = f[200:1000, 500:1400]
    rows.append(row("  same, grabber crops to 900x800", fc, t.cropped(500, 200, 900, 800), [p], two, 600.0))
    f, t, p = shot(r2, two, "siemens_arcadis_varic", distortion=II_K1, angle_deg=60.0, collimation_radius_fraction=0.6,
                   seed=2, **hd)
    rows.append(row("II ARCADIS, field collimated to 60 %", f, t, [p], two, 600.0))
    f, t, p = shot(r2, two, "ge_oec_9900_elite_9in", distortion=II_S, angle_deg=45.0, frame_size_px=(1280, 1024))
    rows.append(row("II OEC, k1, k2, p1, p2, 1280x1024", f, t, [p], two, 600.0))

    frames, poses = [], []
    for k, (axis, ang, height) in enumerate((((0, 0, 1), 5.0, 0.0), ((1, 0, 0), 30.0, 230.0),
                                             ((0, 1, 0), 30.0, 230.0))):
        f, t, p = shot(r1, one, "siemens_arcadis_varic", distortion=II_K1, axis=axis, angle_deg=ang,
                       height_mm=height, seed=k, **hd)
        frames.append(f)
        poses.append(p)
    rows.append(row("single plane, 1 flat + 2 tilted (30 deg)", frames, t, poses, one, 600.0))

    print(dewarp_table(r2, two))
    print("| case | beads | rms px | max px | SID err % | px / py err % | pp err px | model max px "
          "| distortion | time s | target met |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
