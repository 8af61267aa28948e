"""The same simulated shots sent by the C-arm over DICOM and seen through its video output:
success rate and time per shot.

Scenario (demo-like, held-out seed): the built-in sample pelvis, implant L1, its lateral,
inlet and outlet views, ``--per-view`` shots each with the C-arm turned off the planned view
by up to ``--max-off-deg`` (orbital and tilt, uniform) and the isocentre moved by up to 10 mm.
Every shot is simulated once (detector signal and video frame from the same exposure) and
then goes two ways into a :class:`~or_assist.live.pipeline.LivePipeline` whose calibration is
the video's:

* DICOM: a 12-bit XA object (log detector signal windowed on the field, the geometry tags
  and positioner angles of the true pose) sent by a pynetdicom SCU to the ``dicom://``
  source; registered with the header's geometry, from the header's angles first. Time:
  from the C-STORE request's arrival to the result (storing, reading, the pipeline).
* video: the simulator's 8-bit video frame (display processing, burnt-in text) with the
  calibrated video geometry, from the planned views (and the last registered pose).
  Time: the pipeline's, from the held frame to the result.

The selected view is the true one in both. Success: registered with confidence and within
2 deg and 3 mm (at the isocentre) of the true pose; "confident" counts every confident
registration, right or wrong (a wrong confident one is the dangerous kind).

Run from the repository root (a few minutes on 2 cores)::

    python benchmarks/dicom_vs_video.py --per-view 2
    python benchmarks/dicom_vs_video.py --per-view 2 --no-budget

Measured: see docs/dicom_receive.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from or_assist.core.carm import carm_angles_from_pose, patient_axes, pose_from_carm_angles  # noqa: E402
from or_assist.core.view_poses import plan_view_pose  # noqa: E402
from or_assist.live.pipeline import LivePipeline  # noqa: E402
from or_assist.register.pipeline import Registrar  # noqa: E402
from or_assist.register.pose_params import isocenter_source_mm, pose_error  # noqa: E402
from or_assist.register.settings import RegistrationSettings  # noqa: E402
from or_assist.render.drr import AttenuationVolume, DRRRenderer  # noqa: E402
from or_assist.sim.dicom_carm import field_windowed_values, shot_dataset  # noqa: E402
from or_assist.sim.scenario.spec import load_sample_case  # noqa: E402
from or_assist.sim.shots.settings import ShotSettings  # noqa: E402
from or_assist.sim.shots.simulate import simulate_shot  # noqa: E402
from or_assist.video.sources.spec import open_source  # noqa: E402

VIEWS = ("lateral", "inlet", "outlet")
SEED = 91017  # held out: no test uses it


def scenario(plan, renderer, detector, frame_px, per_view, max_off_deg, seed):
    """``[(view, true pose, SimulatedShot)]``."""
    rng = np.random.default_rng(seed)
    axes = patient_axes(plan.landmarks)
    s2i = detector.source_to_isocenter_mm
    out = []
    for view in VIEWS:
        planned = plan_view_pose(plan, "L1", view, geometry=detector)
        a = carm_angles_from_pose(planned, axes=axes)
        iso = planned.source_position_lps_mm + s2i * planned.beam_direction_lps
        for _ in range(per_view):
            d_orb, d_tilt = rng.uniform(-max_off_deg, max_off_deg, 2)
            shift = rng.uniform(-10.0, 10.0, 3)
            truth = pose_from_carm_angles(a.orbital_deg + d_orb, a.tilt_deg + d_tilt, iso + shift, s2i, axes=axes)
            shot = simulate_shot(renderer, truth, detector, settings=ShotSettings(
                frame_size_px=frame_px, seed=int(rng.integers(1 << 30)), supersample=1))
            out.append((view, truth, shot))
    return out


def correct(result, truth, geometry) -> bool:
    if not result.registered:
        return False
    rot, offset = pose_error(result.pose, truth, isocenter_source_mm(geometry))
    return rot <= 2.0 and float(np.linalg.norm(offset)) <= 3.0


def run_dicom(plan, renderer, video_geometry, shots, settings, tmp):
    import socket

    from pynetdicom import AE

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pipe = LivePipeline(plan, video_geometry, registrar=Registrar(renderer, video_geometry, settings))
    source = open_source(f"dicom://ORASSIST@{port}?allow=CARM1", store_dir=Path(tmp) / "received",
                         accept_any_patient=True)
    ae = AE(ae_title="CARM1")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.12.1")
    rows = []
    with source:
        for view, truth, shot in shots:
            ds = shot_dataset(field_windowed_values(shot), shot.geometry, truth, patient_position="prone")
            assoc = ae.associate("127.0.0.1", port, ae_title="ORASSIST")
            status = assoc.send_c_store(ds).Status
            assoc.release()
            frame = source.read()
            while frame is None:
                frame = source.read()
            event = pipe.feed(frame)
            result = pipe.process(event.image, "L1", view, frame_index=event.index, dicom=frame.dicom,
                                  pixels=frame.pixels)
            rows.append((view, status, result, result.finished_s - frame.timestamp_s, truth, result.attempts))
    return rows


def run_video(plan, renderer, video_geometry, shots, settings):
    pipe = LivePipeline(plan, video_geometry, registrar=Registrar(renderer, video_geometry, settings))
    rows = []
    for view, truth, shot in shots:
        t0 = time.monotonic()
        result = pipe.process(shot.frame, "L1", view)
        rows.append((view, 0, result, result.finished_s - t0, truth, result.attempts))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-view", type=int, default=2, help="shots per view (default 2)")
    parser.add_argument("--max-off-deg", type=float, default=6.0, help="C-arm off the planned view, up to (deg)")
    parser.add_argument("--detector-px", type=int, default=256, help="side of the DICOM image (default 256)")
    parser.add_argument("--frame-px", type=int, nargs=2, default=(480, 360), metavar=("W", "H"),
                        help="video frame size (default 480 360)")
    parser.add_argument("--no-budget", action="store_true", help="no registration time budget")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    ct, plan, geometry = load_sample_case()
    renderer = DRRRenderer(AttenuationVolume.from_ct(ct))
    detector = geometry.resampled(args.detector_px, args.detector_px)
    shots = scenario(plan, renderer, detector, tuple(args.frame_px), args.per_view, args.max_off_deg, args.seed)
    video_geometry = shots[0][2].video_geometry
    settings = RegistrationSettings(time_budget_s=None) if args.no_budget else RegistrationSettings()
    with tempfile.TemporaryDirectory() as tmp:
        table = {"DICOM": run_dicom(plan, renderer, video_geometry, shots, settings, tmp),
                 "video": run_video(plan, renderer, video_geometry, shots, settings)}
    print(f"\n{args.per_view} shots per view, up to {args.max_off_deg:g} deg off, DICOM {args.detector_px} px 12-bit, "
          f"video {args.frame_px[0]}x{args.frame_px[1]} 8-bit, "
          f"{'no time budget' if args.no_budget else f'budget {settings.time_budget_s:g} s'}, seed {args.seed}")
    print(f"{'path':6} {'shot':>4} {'view':8} {'conf.':5} {'right':5} {'rot deg':>7} {'off mm':>6} "
          f"{'s/shot':>6} {'reg s':>5} {'evals':>5} {'tries':>5} first start")
    for path, rows in table.items():
        for k, (view, _status, result, seconds, truth, attempts) in enumerate(rows, 1):
            geom = detector if path == "DICOM" else video_geometry
            rot, off = (pose_error(result.registration.pose, truth, isocenter_source_mm(geom))
                        if result.registration is not None and result.registration.pose is not None else (np.nan, [np.nan]))
            first = attempts[0].get("start", "?") if attempts else "-"
            print(f"{path:6} {k:4d} {view:8} {str(result.registered):5} {str(correct(result, truth, geom)):5} "
                  f"{rot:7.2f} {float(np.linalg.norm(off)):6.1f} {seconds:6.1f} {result.seconds.get('register', 0):5.1f} "
                  f"{0 if result.registration is None else result.registration.n_evaluations:5d} "
                  f"{len(attempts):5d} {first}")
    print(f"\n{'path':6} {'success':>9} {'confident':>9} {'median s':>8} {'max s':>6}  (s: receive/frame to result)")
    for path, rows in table.items():
        geom = detector if path == "DICOM" else video_geometry
        ok = sum(correct(r[2], r[4], geom) for r in rows)
        conf = sum(r[2].registered for r in rows)
        secs = [r[3] for r in rows]
        print(f"{path:6} {ok:4d}/{len(rows):<4d} {conf:4d}/{len(rows):<4d} {np.median(secs):8.1f} {max(secs):6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
