"""DRR speed: median render time of the numba kernel on real and phantom CTs.

Renders a lateral view through the sacrum (``sijf_view_pose``) with the Siemens Cios
Fusion profile (SID 1020 mm, source-isocentre 530 mm, 298 mm square detector) binned to
128 x 128 and 256 x 256 pixels, with the default step (half the smallest voxel). For
each row: median and best of ``--repeats`` renders after warm-up, the best median of
``--rounds`` rounds (other processes on the machine inflate single rounds), samples per
render and ray samples per second; then the plain reference implementation's time for
the same 128 x 128 image on the shared CT, once.

Peer column: with ``--peer-python PATH`` (default: the environment variable
``ORA_DIFFDRR_PYTHON``), ``benchmarks/diffdrr_peer.py`` runs in that interpreter (an
environment with DiffDRR 0.6.1 and torch, without or_assist) and renders the shared-CT
rows' views (same CT, pose, SID, detector size and pixel spacing) with DiffDRR's CPU
trilinear renderer (sample spacing matched to ours) and its Siddon renderer, torch on
2 threads, timed with the same protocol; the table gets its trilinear median and the
normalised cross-correlation (NCC) between its image and our DRR (the two use different
HU-to-attenuation maps, hence not 1). Below the table, per renderer and size: the NCC
with our renderer on DiffDRR's own HU -> density map (same quantity: a geometry check,
about 0.99999 when the views agree) and the time relative to ours.

Run from the repository root::

    python benchmarks/drr_speed.py                                   # table
    python benchmarks/drr_speed.py --peer-python /tmp/ddenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from or_assist.core.carm import sijf_view_pose  # noqa: E402
from or_assist.core.carm_profiles import load_profile  # noqa: E402
from or_assist.render.drr import AttenuationVolume, DRRRenderer, render_reference  # noqa: E402

SHARED_CT = REPO_ROOT / "tests" / "data" / "real_ct" / "ct_abdomen_pelvis_3mm.nii.gz"
# Left SI-joint implant in the shared CT (LPS mm, patient supine): entry on the lateral
# iliac cortex, apex in the S1 body; the lateral view is centred on its midpoint.
SHARED_ENTRY_MM = (75.0, -71.0, 217.0)
SHARED_APEX_MM = (0.0, -71.0, 217.0)
TARGET_MS = {("shared CT", 128): 7.0, ("shared CT", 256): 25.0}

PEER_SCRIPT = Path(__file__).resolve().parent / "diffdrr_peer.py"
PEER_SKIPPED = ("DiffDRR peer: skipped (no environment; create one with: python3 -m venv /tmp/ddenv "
                "&& /tmp/ddenv/bin/pip install torch==2.14.1 diffdrr==0.6.1)")
PEER_TIMEOUT_S = 1800


def load_shared_ct():
    from or_assist.core.ct.load import load_ct
    return load_ct(SHARED_CT)


def load_sample_ct():
    """The sample phantom CT, or None with the reason when it is not available."""
    try:
        from or_assist.sim.phantom.make import sample_ct_path
    except ImportError as exc:
        return None, f"or_assist.sim.phantom.make.sample_ct_path not available ({exc})"
    from or_assist.core.ct.load import load_ct
    path = Path(sample_ct_path())
    if not path.exists():
        return None, f"{path} does not exist"
    return load_ct(path), ""


def lateral_pose(ct, entry_mm, apex_mm, s2i_mm):
    return sijf_view_pose("lateral", entry_mm, apex_mm, "left", s2i_mm, patient_position="supine")


def phantom_entry_apex(ct):
    """No plan at hand: a 75 mm left-to-centre axis through the volume's centre."""
    n = np.array(ct.hu.shape[::-1], dtype=np.float64)
    centre = ct.origin_mm + (ct.direction * ct.spacing_mm) @ ((n - 1) / 2)
    return centre + np.array([75.0, 0.0, 0.0]), centre


def time_renders(renderer, pose, geom, repeats: int, rounds: int):
    renderer.render(pose, geom)  # warm-up (compilation is done by the constructor)
    medians, best = [], float("inf")
    for _ in range(rounds):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            renderer.render(pose, geom)
            times.append(time.perf_counter() - t0)
        medians.append(statistics.median(times))
        best = min(best, min(times))
    return medians, best, renderer.last_stats.samples


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two images of the same shape."""
    a = np.asarray(a, np.float64) - np.mean(a)
    b = np.asarray(b, np.float64) - np.mean(b)
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")


def diffdrr_density(hu: np.ndarray) -> np.ndarray:
    """DiffDRR 0.6.1's HU -> density map (``diffdrr.data.transform_hu_to_density``, bone
    multiplier 1), re-implemented so that our renderer can draw the same quantity.

    Air (<= -800 HU) gets the lowest soft-tissue value, then everything is shifted and
    scaled to [0, 1]. Returns a float32 array of ``hu``'s shape (dimensionless).
    """
    hu = np.asarray(hu, dtype=np.float32)
    soft = (hu > -800) & (hu <= 350)
    d = hu.copy()
    d[hu <= -800] = hu[soft].min()
    d -= d.min()
    return d / d.max()


def run_peer(python: str, ct_path: Path, pose, geoms: dict, step_mm: float, repeats: int,
             rounds: int, ours: dict, ours_same_density: dict) -> tuple[dict | None, str]:
    """Run ``diffdrr_peer.py`` in ``python`` for the given views; (result, error message).

    ``geoms`` maps detector size -> CArmGeometry, ``ours`` size -> our (H, W) DRR and
    ``ours_same_density`` size -> our DRR of :func:`diffdrr_density`. Each result row gains
    ``ncc`` (peer image vs ``ours``), ``ncc_same_density`` and ``rel_diff_same_density``
    (max absolute difference / max, vs ``ours_same_density``: both are density x mm).
    """
    sid = {g.sid_mm for g in geoms.values()}
    if len(sid) != 1:
        return None, "the geometries differ in SID"
    with tempfile.TemporaryDirectory(prefix="ora_diffdrr_") as tmp:
        job = {"schema": "or_assist.diffdrr_peer_job/1", "volume_path": str(ct_path),
               "sid_mm": sid.pop(), "T_source_from_patient": np.asarray(pose.matrix).tolist(),
               "detectors": [{"size_px": n, "pixel_spacing_mm": list(g.pixel_spacing_mm),
                              "principal_point_px": list(g.principal_point_px)} for n, g in geoms.items()],
               "step_mm": step_mm, "renderers": ["trilinear", "siddon"], "repeats": repeats,
               "rounds": rounds, "threads": 2, "save_dir": tmp}
        job_path = Path(tmp) / "job.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        try:
            proc = subprocess.run([python, str(PEER_SCRIPT), str(job_path)], capture_output=True,
                                  text=True, timeout=PEER_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"{python}: {exc}"
        lines = proc.stdout.strip().splitlines()
        try:
            result = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            result = None
        if proc.returncode != 0 or not isinstance(result, dict) or "error" in result:
            why = result.get("error") if isinstance(result, dict) else None
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return None, f"exit status {proc.returncode}: {why or tail}"
        for row in result["results"]:
            img = np.load(row["image_npy"])
            mine, same = ours[row["size_px"]], ours_same_density[row["size_px"]]
            ok = img.shape == mine.shape
            row["ncc"] = ncc(mine, img) if ok else float("nan")
            row["ncc_same_density"] = ncc(same, img) if ok else float("nan")
            row["rel_diff_same_density"] = float(np.abs(img - same).max() / np.abs(same).max()) \
                if ok else float("nan")
    return result, ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=20, help="renders per round (>= 10)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; the best median is reported")
    ap.add_argument("--no-reference", action="store_true", help="skip the slow reference timing")
    ap.add_argument("--peer-python", default=os.environ.get("ORA_DIFFDRR_PYTHON"), metavar="PATH",
                    help="Python of an environment with DiffDRR 0.6.1 and torch: adds the DiffDRR "
                         "CPU time for the shared-CT views (default: $ORA_DIFFDRR_PYTHON)")
    args = ap.parse_args(argv)
    repeats, rounds = max(10, args.repeats), max(1, args.rounds)

    import numba
    profile = load_profile("siemens_cios_fusion")
    g = profile.geometry
    print(f"DRR speed: numba {numba.__version__}, {numba.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"C-arm: {profile.display_name}: SID {g.sid_mm:.0f} mm, source-isocentre "
          f"{g.source_to_isocenter_mm:.0f} mm, detector {g.detector_size_mm[0]:.0f} mm square")
    print(f"lateral view through the sacrum; median of {repeats} renders, best of {rounds} rounds\n")

    cases = []
    ct = load_shared_ct()
    cases.append(("shared CT", ct, lateral_pose(ct, SHARED_ENTRY_MM, SHARED_APEX_MM, g.source_to_isocenter_mm)))
    sample, why = load_sample_ct()
    if sample is not None:
        cases.append(("sample phantom", sample, lateral_pose(sample, *phantom_entry_apex(sample),
                                                              g.source_to_isocenter_mm)))

    rows, setups, shared_images, shared_step = [], {}, {}, None
    for name, ctv, pose in cases:
        t0 = time.perf_counter()
        renderer = DRRRenderer(AttenuationVolume.from_ct(ctv))
        setups[name] = time.perf_counter() - t0
        for size in (128, 256):
            geom = profile.geometry_at(size)
            medians, best, samples = time_renders(renderer, pose, geom, repeats, rounds)
            rows.append((name, ctv, renderer.default_step_mm, size, medians, best, samples))
            if name == "shared CT":
                shared_images[size] = renderer.render(pose, geom)
                shared_step = renderer.default_step_mm

    peer, peer_msg = None, PEER_SKIPPED
    if args.peer_python:
        name, ctv, pose = cases[0]
        same = DRRRenderer(AttenuationVolume(diffdrr_density(ctv.hu), ctv.origin_mm, ctv.spacing_mm,
                                             ctv.direction))
        same_images = {n: same.render(pose, profile.geometry_at(n)) for n in (128, 256)}
        peer, err = run_peer(args.peer_python, SHARED_CT, pose,
                             {n: profile.geometry_at(n) for n in (128, 256)}, shared_step,
                             repeats, rounds, shared_images, same_images)
        peer_msg = f"DiffDRR peer: failed ({err})" if peer is None else ""
    tri = {r["size_px"]: r for r in (peer or {}).get("results", []) if r["renderer"] == "trilinear"}

    head = (f"{'volume':<15} {'voxels':<15} {'step mm':>7} {'detector':>9} {'median ms':>9} "
            f"{'rounds ms':<20} {'best ms':>7} {'Msamples':>8} {'Msamples/s':>10} {'target':>8} "
            f"{'DiffDRR 0.6.1 CPU ms':>20} {'NCC':>6}")
    print(head)
    print("-" * len(head))
    for i, (name, ctv, step, size, medians, best, samples) in enumerate(rows):
        med = min(medians)
        target = TARGET_MS.get((name, size))
        verdict = "" if target is None else f"{'ok' if med * 1e3 <= target else 'MISS'} {target:g}"
        voxels = "x".join(str(n) for n in ctv.hu.shape[::-1])
        p = tri.get(size) if name == "shared CT" else None
        peer_cols = f"{p['median_ms']:>20.1f} {p['ncc']:>6.3f}" if p else f"{'-':>20} {'-':>6}"
        print(f"{name:<15} {voxels:<15} {step:>7.2f} {size:>4} x{size:<4}"
              f"{med * 1e3:>9.2f} {' '.join(f'{m * 1e3:.1f}' for m in medians):<20} "
              f"{best * 1e3:>7.2f} {samples / 1e6:>8.2f} {samples / med / 1e6:>10.0f} {verdict:>8} {peer_cols}")
        if i + 1 == len(rows) or rows[i + 1][0] != name:
            print(f"{'':<15} (renderer set-up incl. crop and kernel load: {setups[name] * 1e3:.0f} ms)")
    if sample is None:
        print(f"{'sample phantom':<15} skipped: {why}")

    print()
    if peer is None:
        print(peer_msg)
    else:
        print(f"DiffDRR peer: diffdrr {peer['diffdrr']}, torch {peer['torch']} on the CPU, "
              f"{peer['torch_threads']} threads; same CT, pose, SID, detector and pixel spacing "
              f"(shared-CT rows only).\nNCC: its trilinear image vs our DRR (own HU maps); "
              f"same-density: vs our renderer on DiffDRR's HU->density map (geometry check).")
        for r in peer["results"]:
            n = r["size_px"]
            ours_med = min(rows[[x[0] == "shared CT" and x[3] == n for x in rows].index(True)][4])
            extra = (f"{r['n_points']} samples/ray (step {r['step_mm_central_ray']:.2f} mm on the central "
                     f"ray), {r['samples'] / r['median_ms'] / 1e3:.0f} Msamples/s"
                     if r["renderer"] == "trilinear" else "exact voxel traversal")
            print(f"  {r['renderer']:<9} {n:>4} x{n:<4} median {r['median_ms']:8.1f} ms "
                  f"(rounds {' '.join(f'{m:.1f}' for m in r['round_medians_ms'])}; best {r['min_ms']:.1f}), "
                  f"{r['median_ms'] / (ours_med * 1e3):5.1f} x ours; NCC {r['ncc']:.4f}, same-density "
                  f"NCC {r['ncc_same_density']:.6f}, max|diff|/max {r['rel_diff_same_density']:.3f}; {extra}")

    if not args.no_reference:
        name, ctv, pose = cases[0]
        geom = profile.geometry_at(128)
        vol = AttenuationVolume.from_ct(ctv)
        t0 = time.perf_counter()
        ref = render_reference(vol, pose, geom)
        t_ref = time.perf_counter() - t0
        fast = DRRRenderer(vol).render(pose, geom)
        rel = np.abs(fast - ref).max() / np.abs(ref).max()
        print(f"\nreference implementation, {name}, 128 x 128: {t_ref:.2f} s once "
              f"(max |kernel - reference| / max = {rel:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
