"""Assisted planning: propose the standard three implants of a side from a few landmarks.

The standard lateral-approach configuration (DOMAIN.md) is two implants in S1 and one in
S2 per side. From the side's ``s1_foramen`` (required), ``s2_foramen`` (for the S2
implant) and, when present, ``alar_line`` points, the patient's axes
(:func:`or_assist.core.carm.patient_axes`) and the CT, each slot is searched in turn:

1. **S1 cranial**: in the ala above the S1 foramen, posterior to the alar line;
2. **S1 caudal**: beside the S1 foramen, posterior and caudal to the first;
3. **S2**: beside the S2 foramen.

For a slot, candidate apexes lie on a small grid (4 mm steps, lateral x posterior x
superior) around a seed placed relative to the foramen (offsets learnt from clinically
placed implants on the phantom and the real CT: about 12 mm lateral of the foramen,
S1 cranial ~15 mm above it). Candidate axes run medially, tilted anteriorly by
``tilts_deg`` and cranio-caudally by ``cranial_deg``. The entry is where the axis,
followed back from the apex, leaves the ilium (the last sample of HU >= 150 followed by
20 mm without bone: the lateral iliac cortex), and the length is the shortest catalogue
length reaching it (the entry at most 2 mm inside the cortex). Cheap geometric filters
come first (entry and apex in the CT, surface clearance to the foramina and canal >=
``min_clearance_mm`` + 1 mm, >= 3 mm to alar line points, no collision with the
implants already chosen with a 2 mm margin); the best-scoring ones (clearance, near the
seed) then go through :func:`~or_assist.planning.checks.run_plan_checks` with the
landmarks and the anterior cortex distance
(:func:`~or_assist.planning.measure.anterior_cortex_distance_mm`), and among those
passing, the one with the largest clearance (landmarks and anterior cortex) is taken.

The result is a starting point for the planner to adjust, not a plan to use unchecked:
:attr:`Proposal.all_passed` says whether the whole proposal passes the checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from or_assist.core.carm import patient_axes
from or_assist.core.plan import Implant, Plan
from or_assist.planning.checks import CLEARANCE_LANDMARK_KINDS, CheckResult, run_plan_checks
from or_assist.planning.measure import implant_surface_distance_mm, segment_distance_mm
from or_assist.planning.measure import anterior_cortex_distance_mm
from or_assist.errors import InputError

__all__ = ["Proposal", "SLOTS", "propose_side", "propose_plan_implants"]

#: (slot, level, foramen kind, seed offset (lateral, posterior, superior) mm from that foramen)
SLOTS = (("S1 cranial", "S1", "s1_foramen", (11.0, -6.0, 15.0)),
         ("S1 caudal", "S1", "s1_foramen", (13.0, 7.0, 3.0)),
         ("S2", "S2", "s2_foramen", (12.0, -3.0, 5.0)))

_GRID_MM = (-4.0, 0.0, 4.0)
_WIDE_GRID_MM = (-8.0, -4.0, 0.0, 4.0, 8.0)
_BONE_HU = 150.0
_EXIT_GAP_MM = 20.0
_COLLISION_MARGIN_MM = 2.0
_ALAR_CLEARANCE_MM = 3.0
_MAX_FULL_CHECKS = 40


@dataclass
class Proposal:
    """A proposed set of implants.

    Attributes
    ----------
    implants : list of Implant
    checks : list of CheckResult
        :func:`run_plan_checks` of the plan's landmarks with the proposed implants.
    messages : list of str
        Per slot: what was chosen (or why nothing passed).
    candidates_checked : int
        How many candidates went through the full checks.
    """

    implants: list[Implant]
    checks: list[CheckResult] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    candidates_checked: int = 0

    @property
    def all_passed(self) -> bool:
        """Every check of every proposed implant passed (and there is at least one)."""
        return bool(self.implants) and all(r.passed for r in self.checks)

    @property
    def summary(self) -> str:
        failed = sum(1 for r in self.checks if not r.passed)
        state = "all checks pass" if self.all_passed else f"{failed} check(s) fail: adjust before use"
        return f"proposed {', '.join(i.id for i in self.implants) or 'nothing'} ({state}); " + "; ".join(self.messages)


def _side_landmarks(landmarks, kind: str, side: str) -> list:
    return [lm for lm in landmarks if lm.kind == kind and lm.side == side]


def _directions(lateral, post, sup, tilts_deg, cranial_deg) -> np.ndarray:
    out = []
    for a in np.deg2rad(tilts_deg):
        for c in np.deg2rad(cranial_deg):
            d = np.cos(c) * (np.cos(a) * -lateral + np.sin(a) * -post) + np.sin(c) * sup
            out.append(d / np.linalg.norm(d))
    return np.array(out)


def _exit_distances_mm(ct, apexes: np.ndarray, dirs: np.ndarray, max_mm: float = 100.0) -> np.ndarray:
    """Distance from each apex back along ``-dir`` to the lateral iliac cortex (NaN if none)."""
    t = np.arange(0.0, max_mm + _EXIT_GAP_MM + 1e-9, 1.0)
    pts = apexes[:, None, :] - dirs[:, None, :] * t[None, :, None]
    bone = ct.sample_hu(pts.reshape(-1, 3), outside=-1000.0).reshape(len(apexes), len(t)) >= _BONE_HU
    gap = int(_EXIT_GAP_MM)
    padded = np.concatenate([bone[:, 1:], np.zeros((len(apexes), gap), bool)], axis=1)
    ahead = np.lib.stride_tricks.sliding_window_view(padded, gap, axis=1)[:, :len(t)]
    ok = bone & ~ahead.any(axis=2) & (t[None, :] <= max_mm)
    first = np.where(ok.any(axis=1), ok.argmax(axis=1), -1)
    return np.where(first >= 0, t[np.maximum(first, 0)], np.nan)


def _length_for(catalogue, family: str, reach_mm: float):
    items = catalogue.families[family]
    for it in items:
        if it.length_mm >= reach_mm - 2.0:
            return it if it.length_mm <= reach_mm + 5.0 else None
    return None


def _search_slot(plan, ct, imp_id, side, level, base, lateral, post, sup, family, min_clearance_mm,
                 grid_lat_sup, grid_post, dirs, clear_lms, alar, obstacles):
    """One slot's grid search: ``(best (margin, Implant) or None, scored candidates, full checks run)``."""
    grid = np.array([base + a * lateral + b * post + c * sup
                     for a in grid_lat_sup for b in grid_post for c in grid_lat_sup])
    apexes = np.repeat(grid, len(dirs), axis=0)
    dd = np.tile(dirs, (len(grid), 1))
    reach = _exit_distances_mm(ct, apexes, dd)
    scored = []
    for apex, d, r in zip(apexes, dd, reach):
        if not np.isfinite(r):
            continue
        item = _length_for(plan.catalogue, family, float(r))
        if item is None:
            continue
        entry = apex - d * item.length_mm
        if not bool(np.all(ct.contains(np.stack([entry, apex])))):
            continue
        imp = Implant(imp_id, side, item, entry, apex, 0.0, level)
        clear = min((implant_surface_distance_mm(imp, lm.position_lps_mm) - lm.radius_mm for lm in clear_lms),
                    default=20.0)
        if clear < min_clearance_mm + 1.0:
            continue
        alar_d = min((implant_surface_distance_mm(imp, lm.position_lps_mm) - lm.radius_mm for lm in alar),
                     default=20.0)
        if alar_d < _ALAR_CLEARANCE_MM:
            continue
        if any(segment_distance_mm(entry, apex, o.entry_lps_mm, o.apex_lps_mm) <
               imp.item.circumradius_mm + o.item.circumradius_mm + _COLLISION_MARGIN_MM for o in obstacles):
            continue
        score = min(clear, 8.0) + 0.5 * min(alar_d, 6.0) - 0.15 * float(np.linalg.norm(apex - base))
        scored.append((score, imp))
    scored.sort(key=lambda s: -s[0])
    best, n_checked = None, 0
    for _, imp in scored[:_MAX_FULL_CHECKS]:
        n_checked += 1
        trial = Plan(None, None, [imp], list(plan.landmarks), catalogue=plan.catalogue)
        results = run_plan_checks(trial, ct, min_clearance_mm=min_clearance_mm)
        if not all(r.passed for r in results):
            continue
        d_ant, _ = anterior_cortex_distance_mm(ct, imp, -post)
        if d_ant is not None and d_ant < min_clearance_mm:
            continue
        clear = next(r.value for r in results if r.check == "clearance")
        margin = min(20.0 if clear is None else clear, 20.0 if d_ant is None else d_ant)
        if best is None or margin > best[0]:
            best = (margin, imp)
        if n_checked >= 12:
            break
    return best, scored, n_checked


def propose_side(plan: Plan, ct, side: str, *, family: str = "T7", min_clearance_mm: float = 2.0,
                 tilts_deg=(-5.0, 5.0, 15.0, 25.0), cranial_deg=(-10.0, 0.0, 10.0),
                 existing: list[Implant] | None = None) -> Proposal:
    """Propose the S1 cranial, S1 caudal and S2 implants of one side (module doc).

    Parameters
    ----------
    plan : Plan
        Its landmarks (``s1_foramen`` of the side required; ``s2_foramen`` for S2;
        ``alar_line``, ``spinal_canal``, ``si_joint`` used when present) and catalogue.
    ct : CTVolume
    side : {'left', 'right'}
    family : str
        Catalogue family (diameter).
    min_clearance_mm : float
        As :func:`run_plan_checks`.
    tilts_deg, cranial_deg : sequences of float
        Anterior and cranial tilt grid of the axis.
    existing : list of Implant, optional
        Implants to avoid (e.g. the other side's).

    Returns
    -------
    Proposal
        ``checks`` are those of the side's proposed implants only.

    Raises
    ------
    InputError
        Unknown side or family, or no ``s1_foramen`` landmark on that side.
    """
    if side not in ("left", "right"):
        raise InputError(f"must be 'left' or 'right', got {side!r}", "side")
    if family not in plan.catalogue.families:
        raise InputError(f"unknown implant family {family!r}; valid: {', '.join(plan.catalogue.families)}", "family")
    if not _side_landmarks(plan.landmarks, "s1_foramen", side):
        raise InputError(f"assisted planning needs the {side} S1 foramen landmark (s1_foramen, side {side}); "
                         f"place it, and the S2 foramen for the S2 implant", "landmarks")
    left, post, sup = patient_axes(plan.landmarks)
    lateral = left if side == "left" else -left
    prefix = "L" if side == "left" else "R"
    dirs = _directions(lateral, post, sup, tilts_deg, cranial_deg)
    clear_lms = [lm for lm in plan.landmarks if lm.kind in CLEARANCE_LANDMARK_KINDS]
    alar = _side_landmarks(plan.landmarks, "alar_line", side)
    chosen: list[Implant] = []
    others = list(existing or [])
    messages: list[str] = []
    n_checked = 0
    for k, (slot, level, kind, offset) in enumerate(SLOTS):
        foramina = _side_landmarks(plan.landmarks, kind, side)
        imp_id = f"{prefix}{k + 1}"
        if not foramina:
            messages.append(f"{imp_id} ({slot}) skipped: no {kind} landmark on the {side}")
            continue
        base = foramina[0].position_lps_mm + offset[0] * lateral + offset[1] * post + offset[2] * sup
        best, scored, n = _search_slot(plan, ct, imp_id, side, level, base, lateral, post, sup, family,
                                       min_clearance_mm, _GRID_MM, _GRID_MM + (8.0,), dirs, clear_lms, alar,
                                       chosen + others)
        n_checked += n
        if best is None:            # a wider search before giving up
            wide_dirs = _directions(lateral, post, sup, np.arange(-15.0, 36.0, 10.0), (-20.0, -10.0, 0.0, 10.0, 20.0))
            best, wide, n = _search_slot(plan, ct, imp_id, side, level, base, lateral, post, sup, family,
                                         min_clearance_mm, _WIDE_GRID_MM, _WIDE_GRID_MM, wide_dirs, clear_lms,
                                         alar, chosen + others)
            n_checked += n
            scored = scored or wide
        if best is None:
            if scored:
                imp = scored[0][1]
                chosen.append(imp)
                messages.append(f"{imp_id} ({slot}): no candidate passed every check; the best is proposed "
                                f"for adjustment")
            else:
                messages.append(f"{imp_id} ({slot}): no candidate found in the bone around the {kind} landmark")
            continue
        chosen.append(best[1])
        messages.append(f"{imp_id} ({slot}) {best[1].item.id}, margin {best[0]:.1f} mm")
    checks = []
    if chosen:
        final = Plan(None, None, chosen + others, list(plan.landmarks), catalogue=plan.catalogue)
        checks = [r for r in run_plan_checks(final, ct, min_clearance_mm=min_clearance_mm)
                  if r.implant in {i.id for i in chosen}]
    return Proposal(chosen, checks, messages, n_checked)


def propose_plan_implants(plan: Plan, ct, *, sides=None, family: str = "T7",
                          min_clearance_mm: float = 2.0) -> Proposal:
    """Propose implants for every side with an S1 foramen landmark (or the given sides).

    Implants of sides not proposed are kept as obstacles (collision).

    Raises
    ------
    InputError
        No side has an ``s1_foramen`` landmark (the message says what to place).
    """
    if sides is None:
        sides = [s for s in ("left", "right") if _side_landmarks(plan.landmarks, "s1_foramen", s)]
    if not sides:
        raise InputError("assisted planning needs at least one S1 foramen landmark (s1_foramen, left or right), "
                         "and the S2 foramen of that side for the S2 implant; alar line points help", "landmarks")
    result = Proposal([])
    for side in sides:
        keep = [i for i in plan.implants if i.side not in sides] + result.implants
        p = propose_side(plan, ct, side, family=family, min_clearance_mm=min_clearance_mm, existing=keep)
        result.implants += p.implants
        result.messages += p.messages
        result.candidates_checked += p.candidates_checked
    keep = [i for i in plan.implants if i.side not in sides]
    final = Plan(None, None, keep + result.implants, list(plan.landmarks), catalogue=plan.catalogue)
    ids = {i.id for i in result.implants}
    result.checks = [r for r in run_plan_checks(final, ct, min_clearance_mm=min_clearance_mm) if r.implant in ids]
    return result
