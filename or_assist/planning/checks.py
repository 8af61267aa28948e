"""Safety checks of a plan against its CT (``or-assist plan-check``).

Checks, one row per implant (names as in the table):

``length``
    The catalogue length against the planned entry-apex distance:
    ``|item.length_mm - |apex - entry|| <= length_tolerance_mm`` (default 2.5 mm, half
    the 5 mm catalogue step).
``in_bone``
    Samples on the implant volume (the axis, the three vertex edges and the three face
    centre lines, every ~1 mm, following the tapered tip) are classified as bone: HU >=
    ``bone_hu`` (200), or *enclosed by bone*, i.e. at least 11 of 14 rays (6 axis and 8
    diagonal directions) from the sample reach HU >= ``shell_hu`` (150) within
    ``enclosure_radius_mm`` (60 mm). The enclosure rule recognises fatty or osteoporotic
    marrow (the sacral ala is often near 0 HU) inside its cortical shell, while soft
    tissue beside the bone or in the pelvis is open in at least four directions. Samples
    within ``joint_exclusion_mm`` of the SI joint found by ``crosses_si_joint`` are left
    out (the joint is not bone). Passes when the bone fraction is >=
    ``min_bone_fraction`` (0.85) **and** the apex itself is bone; a failure names the apex.
``crosses_si_joint``
    The HU profile along the axis (step <= 0.5 mm) is searched for the joint in two
    forms. A *gap* (the joint space resolved, as on the phantom or a thin-slice CT): a
    local minimum whose highest samples within ``joint_window_mm`` (default max(5 mm,
    2 voxels)) on both sides reach ``cortex_hu`` (250) and lie at least
    ``min_joint_contrast_hu`` (100) above it, with the dip no wider than
    ``max_joint_gap_mm`` (6 mm) at half depth. A *band* (a 3 mm CT rarely resolves the
    1-3 mm joint space; the medial iliac and sacral subchondral cortices merge into one
    dense band): a cortical peak (HU >= ``cortex_hu``, prominence >= the contrast) that
    follows a lower-density stretch of bone (the iliac marrow; in bone by the rule above),
    not the flank of a gap. A candidate needs ``min_ilium_mm`` (5 mm) of implant before
    it, ``min_sacral_purchase_mm`` (5 mm) after it, and at least half of the axis samples
    on each side in bone, so an implant leaving the ilium into the pelvis does not count.
    With ``si_joint`` landmarks of the implant's side within 25 mm of the axis, the
    candidate nearest the nearest landmark's projection on the axis is taken, within
    ``joint_prior_tolerance_mm`` (4 mm) + half the landmark's distance from the axis +
    its radius; as the landmark says where the joint is, weaker image evidence suffices
    there (osteoporotic subchondral bone at 3 mm can be below 200 HU): cortices >=
    ``shell_hu`` (150), contrast >= half of ``min_joint_contrast_hu``, dips up to
    ``max_joint_gap_mm`` + 4 mm wide. Without landmarks: the first gap from the entry,
    else the first band. Value: the implant length beyond the joint (sacral purchase).
``clearance``
    Surface-to-surface distance between the implant and each ``s1_foramen``,
    ``s2_foramen`` and ``spinal_canal`` landmark sphere (``radius_mm``): >=
    ``min_clearance_mm``. The implant is taken as its circumradius around the axis,
    shrinking linearly to 0 over the tapered tip: an envelope of the triangular prism and
    its pyramid tip, so the distance is conservative (the true gap is never smaller).
``collision``
    Segment-segment distance between this implant's axis and every other implant's axis
    >= the sum of their circumradii + ``collision_margin_mm``.

A check that cannot run (no landmarks, no other implant) is reported as skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from or_assist.core.plan import (Implant, Plan, check_implants_in_ct, implant_vertex_directions,
                                  load_plan, load_plan_ct)
from or_assist.core.validate import check_range
from or_assist.planning.joint import find_si_joint, si_joint_prior
from or_assist.planning.measure import implant_surface_distance_mm, segment_distance_mm

__all__ = [
    "CHECK_NAMES",
    "CLEARANCE_LANDMARK_KINDS",
    "CheckResult",
    "run_plan_checks",
    "plan_check_exit_code",
    "check_plan_file",
    "PlanCheckReport",
    "bone_mask",
]

CHECK_NAMES = ("length", "in_bone", "crosses_si_joint", "clearance", "collision")
CLEARANCE_LANDMARK_KINDS = ("s1_foramen", "s2_foramen", "spinal_canal")

_ENCLOSURE_DIRS = np.vstack([np.vstack([np.eye(3), -np.eye(3)]),
                             np.array([[sx, sy, sz] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)],
                                      dtype=np.float64) / np.sqrt(3.0)])
_ENCLOSURE_MIN_HITS = 11          # of 14 directions
@dataclass
class CheckResult:
    """One row of the plan-check table.

    Attributes
    ----------
    implant : str or None
        Implant id (None for plan-wide rows).
    check : str
        One of :data:`CHECK_NAMES`.
    passed : bool
        True also when skipped.
    value, limit : float or None
        The measured value and its limit, in ``unit``.
    unit : str
    message : str
        What was measured, and why it failed.
    skipped : bool
        The check could not run (e.g. no landmarks); not counted as a failure.
    """

    implant: str | None
    check: str
    passed: bool
    value: float | None
    limit: float | None
    unit: str
    message: str
    skipped: bool = False


# --------------------------------------------------------------------------- geometry helpers


def _sample_step_mm(ct) -> float:
    return float(min(0.5, np.min(ct.spacing_mm) / 3.0))


def _implant_sample_lines(implant: Implant, step_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Points on the axis, the 3 vertex edges and the 3 face centre lines.

    Returns
    -------
    points : (7, n, 3) float64, LPS mm
    t_mm : (n,) float64, distance from the entry along the axis
    """
    length = implant.length_mm
    n = max(2, int(np.ceil(length / step_mm)) + 1)
    t = np.linspace(0.0, length, n)
    a = implant.axis_unit
    taper = min(implant.item.tip_taper_mm, 0.5 * length)
    scale = np.ones_like(t) if taper <= 0 else np.clip((length - t) / taper, 0.0, 1.0)
    verts = implant_vertex_directions(implant) * implant.item.circumradius_mm
    faces = -verts * 0.5                     # face centres: opposite the vertices, at r_in = R / 2
    offsets = np.vstack([np.zeros((1, 3)), verts, faces])                # (7, 3)
    axis_pts = implant.entry_lps_mm + t[:, None] * a                     # (n, 3)
    pts = axis_pts[None, :, :] + offsets[:, None, :] * scale[None, :, None]
    return pts, t


def bone_mask(ct, points_mm, *, bone_hu: float = 200.0, shell_hu: float = 150.0,
              enclosure_radius_mm: float = 60.0, hu: np.ndarray | None = None) -> np.ndarray:
    """Which points lie in bone: HU >= ``bone_hu``, or enclosed by bone (module doc).

    Parameters
    ----------
    ct : CTVolume
    points_mm : (N, 3) array_like, LPS mm
    bone_hu, shell_hu : float
        Direct bone threshold; threshold a ray must reach to count as hitting bone.
    enclosure_radius_mm : float
        Ray length.
    hu : (N,) array, optional
        HU already sampled at the points.

    Returns
    -------
    (N,) bool ndarray
    """
    pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
    hu = ct.sample_hu(pts) if hu is None else np.asarray(hu).reshape(-1)
    out = hu >= bone_hu
    low = np.flatnonzero(~out & ct.contains(pts))
    if low.size:
        step = float(min(1.5, np.min(ct.spacing_mm)))     # <= 1 voxel: a 1-voxel cortex is not skipped
        t_all = np.arange(step, enclosure_radius_mm + 1e-9, step)
        hit = np.zeros((low.size, len(_ENCLOSURE_DIRS)), dtype=bool)
        chunk = max(1, int(round(15.0 / step)))           # march 15 mm at a time, only unresolved rays
        for c0 in range(0, t_all.size, chunk):
            todo = np.nonzero(~hit)
            if todo[0].size == 0:
                break
            t = t_all[c0:c0 + chunk]
            rays = pts[low[todo[0]], None, :] + _ENCLOSURE_DIRS[todo[1], None, :] * t[None, :, None]
            ray_hu = ct.sample_hu(rays.reshape(-1, 3)).reshape(todo[0].size, t.size)
            hit[todo] = (ray_hu >= shell_hu).any(axis=1)
        out[low] = hit.sum(axis=1) >= _ENCLOSURE_MIN_HITS
    return out



# --------------------------------------------------------------------------- checks


def run_plan_checks(plan: Plan, ct, *, min_clearance_mm: float = 2.0, length_tolerance_mm: float = 2.5,
                    bone_hu: float = 200.0, shell_hu: float = 150.0, enclosure_radius_mm: float = 60.0,
                    min_bone_fraction: float = 0.85, cortex_hu: float = 250.0,
                    min_joint_contrast_hu: float = 100.0, max_joint_gap_mm: float = 6.0,
                    joint_window_mm: float | None = None,
                    min_ilium_mm: float = 5.0, min_sacral_purchase_mm: float = 5.0,
                    joint_prior_tolerance_mm: float = 4.0, joint_exclusion_mm: float = 2.0,
                    collision_margin_mm: float = 0.0) -> list[CheckResult]:
    """Run every check on every implant of the plan (rules and defaults: module doc).

    Parameters
    ----------
    plan : Plan
    ct : CTVolume
        The plan's CT (HU).
    min_clearance_mm : float
        Required surface distance from foramen and canal landmarks.
    (others) : float
        Thresholds of the rules in the module doc.

    Returns
    -------
    list of CheckResult
        Per implant, in plan order: length, in_bone, crosses_si_joint, clearance, collision.

    Raises
    ------
    InputError
        An implant's entry or apex lies outside the CT volume, or ``min_clearance_mm``
        is outside 0..20 mm.
    """
    check_range(min_clearance_mm, 0, 20, "min_clearance_mm", "mm",
                "required surface clearance; a negative one would pass every check")
    check_implants_in_ct(plan, ct)
    if joint_window_mm is None:
        joint_window_mm = max(5.0, 2.0 * float(np.max(ct.spacing_mm)))
    joint_p = dict(cortex_hu=cortex_hu, min_joint_contrast_hu=min_joint_contrast_hu,
                   max_joint_gap_mm=max_joint_gap_mm, joint_window_mm=joint_window_mm, min_ilium_mm=min_ilium_mm,
                   min_sacral_purchase_mm=min_sacral_purchase_mm,
                   joint_prior_tolerance_mm=joint_prior_tolerance_mm)
    bone_kw = dict(bone_hu=bone_hu, shell_hu=shell_hu, enclosure_radius_mm=enclosure_radius_mm)
    step = _sample_step_mm(ct)
    results: list[CheckResult] = []
    for imp in plan.implants:
        results.append(_check_length(imp, length_tolerance_mm))
        joint_row, t_joint = _check_joint(plan, imp, ct, step, joint_p, bone_kw)
        results.append(_check_in_bone(imp, ct, t_joint, joint_exclusion_mm, min_bone_fraction, bone_kw))
        results.append(joint_row)
        results.append(_check_clearance(plan, imp, min_clearance_mm))
        results.append(_check_collision(plan, imp, collision_margin_mm))
    return results


def _check_length(imp: Implant, tol_mm: float) -> CheckResult:
    diff = abs(imp.item.length_mm - imp.length_mm)
    return CheckResult(imp.id, "length", diff <= tol_mm, diff, tol_mm, "mm",
                       f"catalogue {imp.item.id} is {imp.item.length_mm:g} mm, entry-apex "
                       f"{imp.length_mm:.1f} mm")


def _check_in_bone(imp, ct, t_joint, exclusion_mm, min_fraction, bone_kw) -> CheckResult:
    pts, t = _implant_sample_lines(imp, step_mm=1.0)
    keep = np.ones(t.shape, bool) if t_joint is None else np.abs(t - t_joint) > exclusion_mm
    sel = pts[:, keep, :].reshape(-1, 3)
    inside = bone_mask(ct, sel, **bone_kw)
    fraction = float(inside.mean()) if inside.size else 0.0
    apex = imp.apex_lps_mm
    apex_hu = float(ct.sample_hu(apex[None, :])[0])
    apex_ok = bool(bone_mask(ct, apex[None, :], hu=np.array([apex_hu]), **bone_kw)[0])
    msg = f"{100 * fraction:.0f}% of {sel.shape[0]} samples in bone"
    if not apex_ok:
        msg = (f"apex {np.round(apex, 1).tolist()} is outside bone (HU {apex_hu:.0f}); " + msg)
    elif fraction < min_fraction:
        msg += f" (< {100 * min_fraction:.0f}%): part of the implant lies outside bone"
    return CheckResult(imp.id, "in_bone", apex_ok and fraction >= min_fraction, 100 * fraction,
                       100 * min_fraction, "%", msg)


def _check_joint(plan, imp, ct, step, joint_p, bone_kw) -> tuple[CheckResult, float | None]:
    n = max(2, int(np.ceil(imp.length_mm / step)) + 1)
    t = np.linspace(0.0, imp.length_mm, n)
    pts = imp.entry_lps_mm + t[:, None] * imp.axis_unit
    hu = ct.sample_hu(pts).astype(np.float64)
    # classify about every 1 mm and spread to the fine samples (enclosure rays are costly)
    every = max(1, int(round(1.0 / (t[1] - t[0]))))
    coarse = bone_mask(ct, pts[::every], hu=hu[::every], **bone_kw)
    in_bone = np.repeat(coarse, every)[:n]
    prior = si_joint_prior(plan, imp, joint_p["joint_prior_tolerance_mm"])
    if prior is not None:                  # the landmark locates the joint: accept weaker evidence
        joint_p = dict(joint_p, cortex_hu=min(joint_p["cortex_hu"], bone_kw["shell_hu"]),
                       min_joint_contrast_hu=0.5 * joint_p["min_joint_contrast_hu"],
                       max_joint_gap_mm=joint_p["max_joint_gap_mm"] + 4.0)
    found = find_si_joint(t, hu, in_bone, prior, joint_p)
    limit = joint_p["min_sacral_purchase_mm"]
    if found is None:
        why = (f"no SI joint found within {prior[1]:.1f} mm of landmark {prior[2]} (at {prior[0]:.1f} mm)"
               if prior is not None else "no SI joint found")
        return CheckResult(imp.id, "crosses_si_joint", False, None, limit, "mm",
                           f"{why} between entry and apex with bone on both sides and >= {limit:g} mm "
                           f"beyond it"), None
    tj, kind, detail = found
    purchase = imp.length_mm - tj
    return CheckResult(imp.id, "crosses_si_joint", True, purchase, limit, "mm",
                       f"joint at {tj:.1f} mm from entry, {purchase:.1f} mm beyond ({detail})"), tj


def _check_clearance(plan: Plan, imp: Implant, min_mm: float) -> CheckResult:
    lms = [lm for lm in plan.landmarks if lm.kind in CLEARANCE_LANDMARK_KINDS]
    if not lms:
        return CheckResult(imp.id, "clearance", True, None, min_mm, "mm",
                           "skipped: the plan has no foramen or canal landmarks", skipped=True)
    dists = [(implant_surface_distance_mm(imp, lm.position_lps_mm) - lm.radius_mm, lm) for lm in lms]
    d, lm = min(dists, key=lambda x: x[0])
    msg = f"nearest: {lm.name} ({lm.kind})"
    if d < min_mm:
        msg = (f"breaches {lm.name}" if d < 0 else f"too close to {lm.name}") + f" ({lm.kind}): " \
              f"surface distance {d:.1f} mm < {min_mm:g} mm"
    return CheckResult(imp.id, "clearance", d >= min_mm, d, min_mm, "mm", msg)


def _check_collision(plan: Plan, imp: Implant, margin_mm: float) -> CheckResult:
    others = [o for o in plan.implants if o.id != imp.id]
    if not others:
        return CheckResult(imp.id, "collision", True, None, None, "mm",
                           "skipped: no other implant", skipped=True)
    rows = []
    for o in others:
        d = segment_distance_mm(imp.entry_lps_mm, imp.apex_lps_mm, o.entry_lps_mm, o.apex_lps_mm)
        need = imp.item.circumradius_mm + o.item.circumradius_mm + margin_mm
        rows.append((d - need, d, need, o))
    slack, d, need, o = min(rows, key=lambda r: r[0])
    ok = slack >= 0
    msg = (f"nearest: {o.id}, axes {d:.1f} mm apart" if ok else
           f"collides with {o.id}: axes {d:.1f} mm apart < {need:g} mm (sum of circumradii"
           f"{' + margin' if margin_mm else ''})")
    return CheckResult(imp.id, "collision", ok, d, need, "mm", msg)


def plan_check_exit_code(results: list[CheckResult]) -> int:
    """0 when every check passed (or was skipped), 1 otherwise."""
    return 0 if all(r.passed for r in results) else 1


@dataclass(frozen=True)
class PlanCheckReport:
    """The checks of one plan file against its CT (``or-assist plan-check``).

    Attributes
    ----------
    plan_path : Path
        The plan file checked.
    ct_source : str
        The CT the checks ran on (its file or folder).
    warnings : list of str
        E.g. the CT's SHA-256 differs from the plan's and the check ran anyway.
    results : list of CheckResult
        One row per implant and check (:func:`run_plan_checks`).
    """

    plan_path: Path
    ct_source: str
    warnings: list[str]
    results: list[CheckResult]

    @property
    def exit_code(self) -> int:
        """:func:`plan_check_exit_code` of the results."""
        return plan_check_exit_code(self.results)


def check_plan_file(plan_path: str | os.PathLike, *, ct_path: str | os.PathLike | None = None,
                    ignore_hash: bool = False, **check_kwargs) -> PlanCheckReport:
    """``or-assist plan-check PLAN``: load the plan and its CT, run the checks.

    Parameters
    ----------
    plan_path : path-like
        An ``or_assist.plan/1`` file.
    ct_path : path-like, optional
        Check against this CT instead of the plan's own (its SHA-256 is still compared).
    ignore_hash : bool
        Check even when the CT's voxel SHA-256 differs from the plan's (a warning line).
    **check_kwargs
        Passed to :func:`run_plan_checks` (e.g. ``min_clearance_mm``).

    Returns
    -------
    PlanCheckReport

    Raises
    ------
    InputError
        Bad plan file, missing CT, SHA-256 mismatch (unless ``ignore_hash``), an implant
        outside the CT.
    """
    plan = load_plan(plan_path)
    ct, warnings = load_plan_ct(plan, ct_path=None if ct_path is None else Path(ct_path),
                                allow_ct_mismatch=ignore_hash)
    results = run_plan_checks(plan, ct, **check_kwargs)
    return PlanCheckReport(Path(plan_path), str(ct.source or plan.ct_path), list(warnings), results)
