"""Safe saving of a plan, and whether a CT can hold a pelvis plan at all.

:func:`save_plan_checked` refuses, overwriting nothing, to replace a file that is a plan
of another CT (voxel SHA-256 mismatch) or that is not a plan at all.
:func:`check_pelvis_ct` refuses a CT too small for both SI joints.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from or_assist.core.plan import Plan, load_plan, save_plan
from or_assist.errors import InputError

__all__ = ["MIN_PELVIS_EXTENT_MM", "check_pelvis_ct", "save_plan_checked"]

#: Smallest CT extent accepted by the planner along patient x (left-right), y
#: (anterior-posterior) and z (cranio-caudal), mm: both SI joints need ~120 mm across.
MIN_PELVIS_EXTENT_MM = (120.0, 80.0, 40.0)


def check_pelvis_ct(ct, min_extent_mm=MIN_PELVIS_EXTENT_MM) -> np.ndarray:
    """Refuse a CT that cannot hold a pelvis plan.

    Parameters
    ----------
    ct : CTVolume
    min_extent_mm : (3,) sequence
        Minimum extent along patient x, y, z (default :data:`MIN_PELVIS_EXTENT_MM`).

    Returns
    -------
    (3,) float64 ndarray
        The extent along x, y, z (voxel box, mm).

    Raises
    ------
    InputError
        Naming the CT, its extent and what is needed.
    """
    corners = ct.corners_lps_mm()
    # voxel box = centre box + one voxel (half on each side) along each index axis
    pad = np.abs(ct.direction * ct.spacing_mm[None, :]).sum(axis=1)
    extent = corners.max(axis=0) - corners.min(axis=0) + pad
    small = [f"{name} {e:.0f} mm < {m:g} mm" for name, e, m in
             zip(("left-right", "anterior-posterior", "cranio-caudal"), extent, min_extent_mm) if e < m]
    if small:
        raise InputError(f"not a pelvis-sized CT volume: extent {extent[0]:.0f} x {extent[1]:.0f} x "
                         f"{extent[2]:.0f} mm (x, y, z); too small: {'; '.join(small)}. The planner needs "
                         f"both sacroiliac joints and the S1-S2 sacrum in the volume", ct.source or "CT")
    return extent


def save_plan_checked(plan: Plan, path: str | os.PathLike, ct_sha256: str) -> Path:
    """Save a plan, refusing to overwrite a plan that belongs to another CT.

    Parameters
    ----------
    plan : Plan
        Its ``ct_sha256`` must equal ``ct_sha256``.
    path : path-like
    ct_sha256 : str
        The voxel SHA-256 of the CT open in the planner.

    Returns
    -------
    Path

    Raises
    ------
    InputError
        The existing file is a plan of another CT (hash mismatch), is not a readable plan,
        or the plan's own hash differs; nothing is written.
    """
    p = Path(path)
    if plan.ct_sha256 != ct_sha256:
        raise InputError(f"the plan's CT hash {str(plan.ct_sha256)[:12]}... is not the open CT's "
                         f"{ct_sha256[:12]}...; nothing saved", str(p))
    if p.exists():
        try:
            old = load_plan(p)
        except InputError as exc:
            raise InputError(f"exists and is not a readable plan ({exc}); not overwritten: choose "
                             f"another file name", str(p)) from None
        if old.ct_sha256 is not None and old.ct_sha256 != ct_sha256:
            raise InputError(f"is a plan of another CT ({old.ct_path}, voxel SHA-256 "
                             f"{old.ct_sha256[:12]}..., the open CT is {ct_sha256[:12]}...); not "
                             f"overwritten: save under another name", str(p))
    try:
        return save_plan(plan, p)
    except OSError as exc:
        raise InputError(f"cannot write the plan ({exc.strerror or exc})", str(p)) from None
