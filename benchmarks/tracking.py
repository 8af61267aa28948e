"""Tracking: a new shot of nearly the same view, registered from the previous shot's result.

In the OR most shots repeat the view before them: the surgeon advances the pin and takes
another shot, the radiographer touches up the C-arm. The live pipeline then *tracks*
(:meth:`~or_assist.register.pipeline.Registrar.track`: a short local search from the last
registered pose, and the full registration from there when that is not confident).

Protocol, per view x appearance family (the shots of ``benchmarks/registration.py
--families``): shot A is registered from a start +-15 mm / +-10 deg off, as there; when
it registered, shot B of the same C-arm (same appearance, new noise), the guide pin
advanced by 0-10 mm, and in half the pairs the C-arm moved by up to +-3 deg and +-5 mm
(uniform, about the isocentre; the other half a repeat shot), is tracked from A's result.
The table (``registration.py``'s family table) is of the B shots; A shots that did not
register are counted, not tracked. ``--compare-full`` also registers every B shot from
scratch (from A's start moved as the C-arm was), for the gain of tracking.

Run from the repository root (about 2-4 s per pair on 2 cores)::

    python benchmarks/tracking.py                                  # held-out families, real CT
    python benchmarks/tracking.py --families default,flat_panel --seed 2024   # calibration families
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from registration import (CALIBRATION_FAMILIES, PROFILE, VIEWS_ALL, family_row, family_scene,  # noqa: E402
                          family_table, load_case, target_points)

from or_assist.core.carm_profiles import load_profile  # noqa: E402
from or_assist.core.instruments import GuidePin  # noqa: E402
from or_assist.register.pipeline import Registrar, registration_ct  # noqa: E402
from or_assist.register.pose_params import apply_update, isocenter_source_mm  # noqa: E402
from or_assist.register.settings import RegistrationSettings  # noqa: E402
from or_assist.render.drr import AttenuationVolume, DRRRenderer  # noqa: E402

HELD_OUT = ("intensifier", "low_dose", "hard_beam", "cluttered")
MOVE_DEG, MOVE_MM, ADVANCE_MM = 3.0, 5.0, 10.0


def advanced(pin: GuidePin | None, rng) -> GuidePin | None:
    """``pin`` pushed 0-``ADVANCE_MM`` further along its axis (None stays None)."""
    if pin is None:
        return None
    axis = pin.tip_lps_mm - pin.back_lps_mm
    length = float(np.linalg.norm(axis))
    return GuidePin.from_tip_direction(pin.tip_lps_mm + rng.uniform(0, ADVANCE_MM) * axis / length, axis, length)


def shot_pair(ct, plan, view: str, appearance, rng):
    """(shot A, start of A, shot B, start of B from scratch, polarity, implant) of one pair (module doc)."""
    from or_assist.sim.shots.appearance_shot import simulate_appearance_shot

    geometry = load_profile(PROFILE).geometry_at(appearance.detector_px)
    center = isocenter_source_mm(geometry)
    true_a, imp, pin = family_scene(plan, view, geometry, rng)
    shot_a = simulate_appearance_shot(ct, true_a, geometry, appearance, pin=pin, seed=int(rng.integers(2**31)))
    start_a = apply_update(true_a, np.r_[rng.uniform(-10, 10, 3), rng.uniform(-15, 15, 3)], center)
    move = np.zeros(6) if rng.uniform() < 0.5 else np.r_[rng.uniform(-MOVE_DEG, MOVE_DEG, 3),
                                                          rng.uniform(-MOVE_MM, MOVE_MM, 3)]
    true_b = apply_update(true_a, move, center)
    shot_b = simulate_appearance_shot(ct, true_b, geometry, appearance, pin=advanced(pin, rng),
                                      seed=int(rng.integers(2**31)))
    start_b = apply_update(start_a, move, center)
    return shot_a, start_a, shot_b, start_b, "bone-bright" if appearance.invert else "bone-dark", imp


def run(case: str, views, families, n: int, seed: int, settings: RegistrationSettings, compare_full: bool,
        verbose: bool):
    """Rows of the tracked B shots (and of B from scratch), and the count of A shots not registered."""
    from or_assist.sim.shots.appearance import draw_appearance

    ct, plan, name = load_case(case)
    reg_renderer = DRRRenderer(AttenuationVolume.from_ct(registration_ct(ct, settings)))
    points = target_points(plan, ct)
    tracked, full, a_failed = [], [], 0
    for vi, view in enumerate(views):
        for fi, family in enumerate(families):
            for k in range(n):
                rng = np.random.default_rng([seed, vi, fi, k, 1])
                appearance = draw_appearance(family, rng)
                shot_a, start_a, shot_b, start_b, polarity, imp = shot_pair(ct, plan, view, appearance, rng)
                targets = np.stack([imp.entry_lps_mm, imp.apex_lps_mm])
                registrar = Registrar(reg_renderer, shot_a.video_geometry, settings)
                first = registrar.register(shot_a.frame, start_a, polarity=polarity, target_lps_mm=targets)
                if not first.success:
                    a_failed += 1
                    if verbose:
                        print(f"  {name} {view:7s} {family:12s} {k:2d} shot A not registered ({first.reason})")
                    continue
                res = registrar.track(shot_b.frame, polarity=polarity, target_lps_mm=targets)
                tracked.append(family_row(name, view, family, k, res, shot_b.pose, first.pose, points, targets,
                                          verbose))
                if compare_full:
                    res = Registrar(reg_renderer, shot_b.video_geometry, settings).register(
                        shot_b.frame, start_b, polarity=polarity, target_lps_mm=targets)
                    full.append(family_row(name + " (from scratch)", view, family, k, res, shot_b.pose, start_b,
                                           points, targets, verbose))
    return name, tracked, full, a_failed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(HELD_OUT), help="comma-separated appearance families")
    ap.add_argument("--views", default=",".join(VIEWS_ALL))
    ap.add_argument("--per-cell", type=int, default=5, help="pairs per view x family (default 5)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--cases", default="real", help="comma-separated: real, phantom")
    ap.add_argument("--compare-full", action="store_true", help="also register every B shot from scratch")
    ap.add_argument("--quiet", action="store_true", help="no per-shot lines")
    args = ap.parse_args(argv)
    families, views = args.families.split(","), args.views.split(",")
    settings = RegistrationSettings()
    started = time.perf_counter()
    out = []
    for case in args.cases.split(","):
        name, tracked, full, a_failed = run(case, views, families, args.per_cell, args.seed, settings,
                                            args.compare_full, not args.quiet)
        held = "calibration" if set(families) <= set(CALIBRATION_FAMILIES) else "HELD-OUT" \
            if not set(families) & set(CALIBRATION_FAMILIES) else "mixed"
        pairs = len(views) * len(families) * args.per_cell
        out.append(f"{name}: {a_failed} of {pairs} A shots not registered (not tracked)")
        if tracked:
            out.append(family_table(f"{name}: B shots TRACKED from A's result, {held} families "
                                    f"({', '.join(families)})", tracked))
        if full:
            out.append(family_table(f"{name}: the same B shots registered from scratch", full))
    print(f"\ntracking benchmark: seed {args.seed}, {args.per_cell} pairs per view x family, time budget "
          f"{settings.time_budget_s} s, {time.perf_counter() - started:.0f} s in all")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
