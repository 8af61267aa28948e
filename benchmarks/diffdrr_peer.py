"""DiffDRR peer timing: render the benchmark's DRR views with DiffDRR 0.6.1 on the CPU.

Runs in a separate environment that has ``diffdrr`` and ``torch`` (not or_assist, which
it never imports); ``benchmarks/drr_speed.py --peer-python PATH`` calls it. Usage::

    python diffdrr_peer.py JOB.json          # or the job's JSON text itself
    python diffdrr_peer.py '{"schema": "or_assist.diffdrr_peer_job/1", ...}'

It prints one JSON object (``or_assist.diffdrr_peer_result/1``) on stdout.

Job (``or_assist.diffdrr_peer_job/1``)
--------------------------------------
``volume_path``            CT file (NIfTI, anything torchio reads), in Hounsfield units.
``sid_mm``                 source-to-detector distance, mm.
``T_source_from_patient``  4 x 4 pose, LPS mm (the project's CONVENTIONS.md).
``detectors``              list of ``{"size_px": N, "pixel_spacing_mm": [px, py],
                           "principal_point_px": [u0, v0]}`` (square N x N; the
                           principal point defaults to the centre, (N - 1) / 2).
``step_mm``                wanted sample spacing along the rays (trilinear renderer).
``renderers``              optional, default ``["trilinear"]``; also ``"siddon"``.
``repeats``, ``rounds``    renders per round (>= 10 after one warm-up render) and
                           rounds; the best round median is reported, with the minimum.
``threads``                torch CPU threads (default 2).
``save_dir``               optional: each image is saved there as
                           ``diffdrr_<renderer>_<N>.npy`` ((N, N) float32, rows v,
                           columns u of the project's image frame).

How the pose is mapped
----------------------
DiffDRR reads the CT with ``diffdrr.data.read(path, orientation=None,
center_volume=False)``: its world frame is then the file's RAS mm frame (torchio's
affine), with no re-centring and no extra re-orientation (``reorient`` = identity), so
``RAS = diag(-1, -1, 1) @ LPS``. A DiffDRR pose is the camera-to-world transform; its
camera has the source at the origin, the detector plane at ``z = sdd`` and, with
``reverse_x_axis=True``, pixel (row r, column c) at
``x = delx * ((W - 1) / 2 - c) + x0``, ``y = dely * ((H - 1) / 2 - r) + y0``
(read from ``diffdrr/detector.py``: ``Detector._initialize_carm`` and the calibration
matrix). The project's source frame has ``x = px * (c - u0)``, ``y = py * (r - v0)``,
so DiffDRR's camera is ours turned 180 degrees about +z (``Rz = diag(-1, -1, 1)``),
with ``x0 = px * (u0 - (W - 1) / 2)`` and ``y0 = py * (v0 - (H - 1) / 2)``. Hence the
DiffDRR pose is ``diag(-1, -1, 1, 1) @ inv(T_source_from_patient) @ diag(-1, -1, 1, 1)``
and its image needs no flip: element [r, c] is our pixel (u = c, v = r). The caller
checks this by the normalised cross-correlation with its own DRR of the same view.

Sampling
--------
``renderer="trilinear"`` samples every ray at ``n_points`` equally spaced points
between the earliest entry into and the latest exit from the volume box over all rays
(``Trilinear.forward``), so ``n_points`` is chosen to give ``step_mm`` along the
central ray over that span. ``"siddon"`` is exact voxel traversal (nearest voxel per
intersected segment) and has no step. Output units: DiffDRR's density (HU mapped to
[0, 1] by ``transform_hu_to_density``) times mm.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

JOB_SCHEMA = "or_assist.diffdrr_peer_job/1"
RESULT_SCHEMA = "or_assist.diffdrr_peer_result/1"
RENDERERS = ("trilinear", "siddon")
FLIP_XY = np.diag([-1.0, -1.0, 1.0, 1.0])  # LPS <-> RAS, and our camera <-> DiffDRR's

__all__ = ["diffdrr_pose_matrix", "diffdrr_offsets_mm", "load_job", "run_job", "main"]


class JobError(ValueError):
    """A malformed job: the message names the field."""


def _field(job: dict, name: str, kind, default=None, required=True):
    if name not in job:
        if required:
            raise JobError(f"job field '{name}' is missing")
        return default
    value = job[name]
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value <= 0:
            raise JobError(f"job field '{name}' must be a number > 0, got {value!r}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise JobError(f"job field '{name}' must be an integer >= 1, got {value!r}")
        return value
    if not isinstance(value, kind):
        raise JobError(f"job field '{name}' must be a {kind.__name__}, got {type(value).__name__}")
    return value


def load_job(arg: str) -> dict:
    """Parse and check a job given as JSON text or as the path of a JSON file."""
    text = arg if arg.lstrip().startswith("{") else Path(arg).read_text(encoding="utf-8")
    job = json.loads(text)
    if not isinstance(job, dict) or job.get("schema") != JOB_SCHEMA:
        raise JobError(f"job must be a JSON object with \"schema\": \"{JOB_SCHEMA}\"")
    path = Path(_field(job, "volume_path", str))
    if not path.is_file():
        raise JobError(f"job field 'volume_path': no such file {path}")
    _field(job, "sid_mm", float)
    _field(job, "step_mm", float)
    T = np.asarray(_field(job, "T_source_from_patient", list), dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)) or not np.allclose(T[3], [0, 0, 0, 1]) \
            or not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-6) \
            or np.linalg.det(T[:3, :3]) < 0:
        raise JobError("job field 'T_source_from_patient' must be a rigid 4 x 4 matrix (det +1)")
    dets = _field(job, "detectors", list)
    if not dets:
        raise JobError("job field 'detectors' must be a non-empty list")
    for i, d in enumerate(dets):
        where = f"detectors[{i}]"
        if not isinstance(d, dict):
            raise JobError(f"job field '{where}' must be an object")
        _field(d, "size_px", int)
        sp = _field(d, "pixel_spacing_mm", list)
        if len(sp) != 2 or not all(isinstance(x, (int, float)) and x > 0 for x in sp):
            raise JobError(f"job field '{where}.pixel_spacing_mm' must be two numbers > 0")
        pp = d.get("principal_point_px")
        if pp is not None and (len(pp) != 2 or not all(isinstance(x, (int, float)) for x in pp)):
            raise JobError(f"job field '{where}.principal_point_px' must be two numbers")
    renderers = _field(job, "renderers", list, ["trilinear"], required=False)
    if not renderers or any(r not in RENDERERS for r in renderers):
        raise JobError(f"job field 'renderers' must list some of {RENDERERS}, got {renderers!r}")
    _field(job, "repeats", int, 20, required=False)
    _field(job, "rounds", int, 3, required=False)
    _field(job, "threads", int, 2, required=False)
    _field(job, "save_dir", str, None, required=False)
    return job


def diffdrr_pose_matrix(T_source_from_patient) -> np.ndarray:
    """DiffDRR's camera-to-world (RAS mm) matrix for our ``T_source_from_patient`` (LPS)."""
    return FLIP_XY @ np.linalg.inv(np.asarray(T_source_from_patient, dtype=np.float64)) @ FLIP_XY


def diffdrr_offsets_mm(size_px: int, spacing_mm, principal_point_px) -> tuple[float, float]:
    """DiffDRR's principal-point offsets (x0, y0) in mm for our (u0, v0) in pixels."""
    c = (size_px - 1) / 2.0
    return (spacing_mm[0] * (principal_point_px[0] - c), spacing_mm[1] * (principal_point_px[1] - c))


def _n_points(drr, pose, step_mm: float) -> tuple[int, float]:
    """Samples per ray for the trilinear renderer and the resulting central-ray step (mm)."""
    import torch
    from diffdrr.renderers import _get_alpha_minmax

    with torch.no_grad():
        source, target = drr.detector(pose, None)
        ray_len = (target - source).norm(dim=-1)
        src_v, tgt_v = drr.affine_inverse(source), drr.affine_inverse(target)
        dims = torch.tensor(drr.density.shape).to(drr.density)
        amin, amax = _get_alpha_minmax(src_v, tgt_v, dims, drr.renderer.voxel_shift, drr.renderer.eps)
        span = float(amax.max() - amin.min())
        centre = float(ray_len.flatten()[ray_len.numel() // 2])
    n = max(2, math.ceil(span * centre / step_mm) + 1)
    return n, span * centre / (n - 1)


def _time(fn, repeats: int, rounds: int):
    fn()  # warm-up
    medians, best = [], float("inf")
    for _ in range(rounds):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        medians.append(statistics.median(times))
        best = min(best, min(times))
    return medians, best


def run_job(job: dict) -> dict:
    """Render and time every (renderer, detector) of ``job``; see the module docstring."""
    import diffdrr
    import torch
    from diffdrr.data import read
    from diffdrr.drr import DRR
    from diffdrr.pose import RigidTransform

    threads = job.get("threads", 2)
    torch.set_num_threads(threads)
    repeats, rounds = max(10, job.get("repeats", 20)), job.get("rounds", 3)
    save_dir = job.get("save_dir")
    t0 = time.perf_counter()
    subject = read(job["volume_path"], orientation=None, center_volume=False)
    load_s = time.perf_counter() - t0
    pose = RigidTransform(torch.tensor(diffdrr_pose_matrix(job["T_source_from_patient"]),
                                       dtype=torch.float32))
    results = []
    for renderer in job.get("renderers", ["trilinear"]):
        for det in job["detectors"]:
            n = det["size_px"]
            spacing = [float(x) for x in det["pixel_spacing_mm"]]
            pp = det.get("principal_point_px") or [(n - 1) / 2.0, (n - 1) / 2.0]
            x0, y0 = diffdrr_offsets_mm(n, spacing, pp)
            drr = DRR(subject, sdd=job["sid_mm"], height=n, delx=spacing[0], width=n, dely=spacing[1],
                      x0=x0, y0=y0, reverse_x_axis=True, renderer=renderer).to("cpu")
            kwargs, row = {}, {"renderer": renderer, "size_px": n}
            if renderer == "trilinear":
                n_points, step = _n_points(drr, pose, job["step_mm"])
                kwargs["n_points"] = n_points
                row.update(n_points=n_points, step_mm_central_ray=round(step, 4), samples=n * n * n_points)

            def render():
                with torch.no_grad():
                    return drr(pose, **kwargs)

            medians, best = _time(render, repeats, rounds)
            img = render()[0, 0].numpy().astype(np.float32)
            row.update(median_ms=1e3 * min(medians), min_ms=1e3 * best,
                       round_medians_ms=[round(1e3 * m, 3) for m in medians],
                       repeats=repeats, rounds=rounds)
            if save_dir:
                path = Path(save_dir) / f"diffdrr_{renderer}_{n}.npy"
                np.save(path, img)
                row["image_npy"] = str(path)
            results.append(row)
    return {"schema": RESULT_SCHEMA, "diffdrr": diffdrr.__version__, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "device": "cpu", "volume_load_s": round(load_s, 3),
            "volume_shape": list(subject.density.shape[1:]), "results": results}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        job = load_job(argv[0])
    except (OSError, ValueError) as exc:  # JobError and json.JSONDecodeError are ValueErrors
        where = "job" if argv[0].lstrip().startswith("{") else argv[0]
        print(json.dumps({"schema": RESULT_SCHEMA, "error": f"{where}: {exc}"}))
        return 2
    print(json.dumps(run_job(job)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
