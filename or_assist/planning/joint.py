"""The sacroiliac joint on the HU profile along an implant's axis.

Two forms are searched (:func:`find_si_joint`). A *gap*, the joint space resolved (as on
the phantom or a thin-slice CT): a local minimum with cortices on both sides that rise
above it by a contrast, no wider than a gap. A *band* (a 3 mm CT rarely resolves the
1-3 mm joint space; the medial iliac and sacral subchondral cortices merge into one dense
band): a prominent cortical peak that follows a lower-density stretch of bone (the iliac
marrow), not the flank of a gap. A candidate needs iliac bone before it and sacral
purchase after it; with a landmark prior the candidate nearest the landmark within its
tolerance is taken, else the first gap from the entry, else the first band. The
thresholds and their defaults are documented in :mod:`or_assist.planning.checks`.
"""

from __future__ import annotations

import numpy as np

from or_assist.core.plan import Implant, Plan
from or_assist.planning.measure import point_segment_distance_mm

__all__ = ["find_si_joint", "si_joint_prior"]

_PRIOR_MAX_AXIS_DISTANCE_MM = 25.0  # si_joint landmarks farther from the axis are not a prior


def _local_extrema(hu: np.ndarray, sign: float) -> np.ndarray:
    """Indices of local maxima (sign +1) or minima (sign -1); a plateau gives its first sample."""
    v = sign * hu
    left = np.concatenate([[-np.inf], v[:-1]])
    nxt = np.empty_like(v)                      # next different value to the right
    nxt[-1] = -np.inf
    for i in range(len(v) - 2, -1, -1):
        nxt[i] = v[i + 1] if v[i + 1] != v[i] else nxt[i + 1]
    return np.flatnonzero((v > left) & (v > nxt))


def _prominence(hu: np.ndarray, i: int) -> float:
    """Topographic prominence of the peak at ``i`` (profile ends count as bases)."""
    higher_l = np.flatnonzero(hu[:i] > hu[i])
    higher_r = np.flatnonzero(hu[i + 1:] > hu[i])
    lo = higher_l[-1] if higher_l.size else 0
    hi = i + 1 + higher_r[0] if higher_r.size else len(hu) - 1
    left_base = hu[lo:i + 1].min()
    right_base = hu[i:hi + 1].min()
    return float(hu[i] - max(left_base, right_base))


def find_si_joint(t: np.ndarray, hu: np.ndarray, in_bone: np.ndarray, prior: tuple | None,
                  p: dict) -> tuple[float, str, str] | None:
    """The SI joint on an implant's axis profile (the rule is in the module docstring).

    Parameters
    ----------
    t : (N,) float ndarray
        Depth along the axis from the entry, mm, evenly spaced.
    hu : (N,) float ndarray
        HU sampled at ``t``.
    in_bone : (N,) bool ndarray
        Whether each sample is bone (``or_assist.planning.checks.bone_mask``).
    prior : (depth_mm, tolerance_mm, ...) or None
        Where an ``si_joint`` landmark says the joint is, and how far from it to accept.
    p : dict
        ``joint_window_mm``, ``min_joint_contrast_hu``, ``cortex_hu``,
        ``max_joint_gap_mm``, ``min_ilium_mm``, ``min_sacral_purchase_mm``.

    Returns
    -------
    (t_joint_mm, kind, detail) or None
        ``kind`` is ``'gap'`` (joint space resolved) or ``'band'`` (dense joint band).
    """
    h = t[1] - t[0]
    w = max(1, int(round(p["joint_window_mm"] / h)))
    contrast, cortex = p["min_joint_contrast_hu"], p["cortex_hu"]
    gaps = []
    for m in _local_extrema(hu, -1.0):
        if m == 0 or m == len(hu) - 1:
            continue
        left, right = hu[max(0, m - w):m].max(), hu[m + 1:m + 1 + w].max()
        lower = min(left, right)
        if lower < cortex or lower - hu[m] < contrast:
            continue
        half = 0.5 * (lower + hu[m])
        lo = m
        while lo > 0 and hu[lo - 1] < half:
            lo -= 1
        hi = m
        while hi < len(hu) - 1 and hu[hi + 1] < half:
            hi += 1
        if (hi - lo + 1) * h <= p["max_joint_gap_mm"]:
            gaps.append((float(lower - hu[m]), int(m), f"joint space resolved: HU {hu[m]:.0f} between "
                                                       f"cortices {left:.0f}/{right:.0f}"))
    # one gap per dip: keep the deepest minimum within the window
    gap_cands: list[tuple[float, str, str]] = []
    taken: list[int] = []
    for depth, m, detail in sorted(gaps, reverse=True):
        if all(abs(m - k) > w for k in taken):
            taken.append(m)
            gap_cands.append((float(t[m]), "gap", detail))
    band_cands: list[tuple[float, str, str]] = []
    prev = None
    for i in _local_extrema(hu, 1.0):
        if hu[i] < cortex or _prominence(hu, i) < contrast:
            continue
        start = 0 if prev is None else prev
        prev = int(i)
        if i - start < 1 or any(abs(i - k) <= w for k in taken):
            continue                                  # a gap's flank, or nothing before it
        v = start + int(np.argmin(hu[start:i]))
        if hu[i] - hu[v] >= contrast and in_bone[v] and (start > 0 or in_bone[0]):
            band_cands.append((float(t[i]), "band", f"dense joint band (HU {hu[i]:.0f}) after iliac marrow "
                                                    f"(HU {hu[v]:.0f}); joint space not resolved"))
    length = t[-1]
    ok = []
    for tj, kind, detail in sorted(gap_cands) + sorted(band_cands):     # gaps first
        pre, post = in_bone[t < tj - 1.0], in_bone[t > tj + 1.0]
        if tj < p["min_ilium_mm"] or length - tj < p["min_sacral_purchase_mm"]:
            continue
        if pre.size == 0 or post.size == 0 or pre.mean() < 0.5 or post.mean() < 0.5:
            continue
        ok.append((tj, kind, detail))
    if prior is not None:
        prior_t, tol = prior[0], prior[1]
        ok = [c for c in ok if abs(c[0] - prior_t) <= tol]
        return min(ok, key=lambda c: abs(c[0] - prior_t)) if ok else None
    return ok[0] if ok else None



def si_joint_prior(plan: Plan, implant: Implant, tolerance_mm: float) -> tuple[float, float, str] | None:
    """The nearest ``si_joint`` landmark of the implant's side within 25 mm of the axis:
    ``(depth along the axis mm, tolerance mm, name)``. The tolerance grows with the
    landmark's distance from the axis (half of it: the joint surface may be oblique to
    the axis) and with its radius."""
    best = None
    for lm in plan.landmarks:
        if lm.kind != "si_joint" or lm.side != implant.side:
            continue
        d = point_segment_distance_mm(lm.position_lps_mm, implant.entry_lps_mm, implant.apex_lps_mm)
        if d <= _PRIOR_MAX_AXIS_DISTANCE_MM + lm.radius_mm and (best is None or d < best[0]):
            rel = lm.position_lps_mm - implant.entry_lps_mm
            depth = float(rel @ implant.axis_unit)
            off_axis = float(np.linalg.norm(rel - depth * implant.axis_unit))
            best = (d, depth, tolerance_mm + 0.5 * off_axis + lm.radius_mm, lm.name)
    return None if best is None else best[1:]
