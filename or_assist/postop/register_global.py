"""Global start of the CT-to-CT registration: a rotation grid with an exhaustive shift search per rotation.

A local optimiser (the Mattes MI runs of :mod:`or_assist.postop.register3d`) captures a
few degrees and a few centimetres; a post-op patient turns by up to 15 deg and moves by up
to 50 mm. This stage scores every rigid pose of a coarse grid cheaply and hands the best
few, each a different rotation, to the local optimiser:

* the two bone masks (metal and its neighbourhood left out) are smoothed and resampled on
  axis-aligned grids of ``step_mm`` (6 mm: a few ten thousand voxels);
* for every rotation of the grid (every combination of ``-max_deg .. +max_deg`` in steps
  of ``step_deg`` about the three LPS axes, through the pre-op bone centre; 5 x 5 x 5 = 125
  rotations for 15 / 7.5 deg) the pre-op mask is rotated and its correlation with the
  post-op mask is computed for *every* shift at once by FFT (the post-op transform is taken
  once); the best shift and its score are kept;
* the candidates are sorted by score; a candidate within one grid step (in every Euler
  angle) of a better one is dropped (one per basin).

The score is the overlap of the bone masks (the pre-op mask with its mean over its own box
removed, so that shifting it onto empty space is not rewarded), not the registration's
metric: it does not decide anything, it proposes starts. A grid step of 7.5 deg leaves a
start at most about 6.5 deg from the truth (3.75 deg per axis), inside the basin of the
Mattes MI runs; the acceptance check then judges the refined result as before.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import fft as sfft

from or_assist.core.ct.volume import CTVolume
from or_assist.errors import InputError

__all__ = ["GlobalCandidate", "global_candidates", "axis_aligned_bone"]


@dataclass(frozen=True)
class GlobalCandidate:
    """One pose of the global search: ``T_postop_from_preop(x) = R (x - c) + c + d``.

    Attributes
    ----------
    angles_rad : (float, float, float)
        Euler angles (``sitk.Euler3DTransform.SetRotation`` order) of ``R``.
    shift_mm : numpy.ndarray
        ``d``, LPS mm.
    score : float
        Correlation of the bone masks (higher is better; comparable within one search only).
    """

    angles_rad: tuple[float, float, float]
    shift_mm: np.ndarray
    score: float

    def transform(self, centre_mm) -> sitk.Euler3DTransform:
        """The candidate as the SimpleITK pre-op -> post-op transform about ``centre_mm``."""
        tx = sitk.Euler3DTransform()
        tx.SetCenter(tuple(float(v) for v in centre_mm))
        tx.SetRotation(*(float(a) for a in self.angles_rad))
        tx.SetTranslation(tuple(float(v) for v in self.shift_mm))
        return tx

    @property
    def name(self) -> str:
        """E.g. ``"rotated (+7.5, +0, -15) deg"``."""
        return "rotated ({:+g}, {:+g}, {:+g}) deg".format(*(round(math.degrees(a), 1) for a in self.angles_rad))


def _smoothed(mask: sitk.Image, step_mm: float) -> sitk.Image:
    return sitk.SmoothingRecursiveGaussian(sitk.Cast(mask, sitk.sitkFloat32), 0.5 * step_mm)


def _grid(lo: np.ndarray, size, step_mm: float) -> sitk.Image:
    ref = sitk.Image([int(v) for v in size], sitk.sitkFloat32)
    ref.SetOrigin(tuple(float(v) for v in lo))
    ref.SetSpacing((step_mm,) * 3)
    return ref


def axis_aligned_bone(mask: sitk.Image, ct: CTVolume, step_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """The bone mask smoothed and resampled on an axis-aligned LPS grid; (array (Z, Y, X), origin)."""
    corners = ct.corners_lps_mm()
    lo, hi = corners.min(0), corners.max(0)
    size = np.floor((hi - lo) / step_mm).astype(int) + 1
    out = sitk.Resample(_smoothed(mask, step_mm), _grid(lo, size, step_mm), sitk.Transform(), sitk.sitkLinear,
                        0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out), lo


def _euler_grid(max_deg: float, step_deg: float) -> list[tuple[float, float, float]]:
    n = int(math.floor(max_deg / step_deg + 1e-9)) if step_deg > 0 else 0
    one = [math.radians(k * step_deg) for k in range(-n, n + 1)]
    return list(itertools.product(one, one, one))


def global_candidates(fixed_mask: sitk.Image, preop: CTVolume, moving_mask: sitk.Image, postop: CTVolume,
                      centre_mm, *, max_deg: float = 15.0, step_deg: float = 7.5, step_mm: float = 6.0,
                      keep: int = 6) -> list[GlobalCandidate]:
    """The best rigid poses of a rotation grid x every shift, by bone-mask correlation (module doc).

    Parameters
    ----------
    fixed_mask, moving_mask : sitk.Image
        Bone masks (uint8, metal left out) of the pre-op and post-op CT.
    preop, postop : CTVolume
        Their CTs (for the boxes).
    centre_mm : (3,) array_like
        Centre of the rotations, pre-op LPS mm (the pre-op bone centre).
    max_deg, step_deg : float
        Rotation grid: ``-max_deg .. +max_deg`` in ``step_deg`` steps about each LPS axis;
        ``max_deg`` 0: the identity rotation only (a pure shift search).
    step_mm : float
        Grid of the masks and of the shifts.
    keep : int
        How many candidates (each in its own basin) to return.

    Returns
    -------
    list of GlobalCandidate
        Best first; empty when no rotation overlaps at all.

    Raises
    ------
    InputError
        A negative ``max_deg`` or a non-positive ``step_deg`` / ``step_mm``.
    """
    if not (max_deg >= 0 and math.isfinite(max_deg)):
        raise InputError(f"must be an angle >= 0, got {max_deg!r}", "max_deg")
    if not (step_deg > 0 and math.isfinite(step_deg)):
        raise InputError(f"must be a positive angle, got {step_deg!r}", "step_deg")
    if not (step_mm > 0 and math.isfinite(step_mm)):
        raise InputError(f"must be a positive distance, got {step_mm!r}", "step_mm")
    c = np.asarray(centre_mm, dtype=np.float64).reshape(3)
    b, ob = axis_aligned_bone(moving_mask, postop, step_mm)
    fixed_s = _smoothed(fixed_mask, step_mm)
    ones = sitk.Image(fixed_mask.GetSize(), sitk.sitkFloat32) + 1.0
    ones.CopyInformation(fixed_mask)
    # every rotated pre-op box fits a cube about c of the box's largest corner distance
    corners = preop.corners_lps_mm()
    half = float(np.linalg.norm(corners - c, axis=1).max()) + step_mm
    n = int(math.ceil(2 * half / step_mm)) + 1
    lo = c - half
    ref = _grid(lo, (n, n, n), step_mm)
    shape = [sfft.next_fast_len(n + nb, real=True) for nb in b.shape]
    axes = (0, 1, 2)
    fb = sfft.rfftn(b, shape, axes=axes)
    results = []
    for angles in _euler_grid(max_deg, step_deg):
        tx = sitk.Euler3DTransform()
        tx.SetCenter(tuple(float(v) for v in c))
        tx.SetRotation(*angles)
        back = tx.GetInverse()        # output (rotated) point -> pre-op point
        a = sitk.GetArrayFromImage(sitk.Resample(fixed_s, ref, back, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
        w = sitk.GetArrayFromImage(sitk.Resample(ones, ref, back, sitk.sitkNearestNeighbor, 0.0, sitk.sitkFloat32))
        inside = w > 0.5
        if not inside.any():
            continue
        a = np.where(inside, a - a[inside].mean(), 0.0)
        corr = sfft.irfftn(np.conj(sfft.rfftn(a, shape, axes=axes)) * fb, shape, axes=axes)
        k = int(np.argmax(corr))
        peak = np.array(np.unravel_index(k, corr.shape))       # (z, y, x)
        peak = np.where(peak > np.array(b.shape) - 1, peak - np.array(shape), peak)
        shift = step_mm * peak[::-1].astype(np.float64) + ob - lo
        results.append(GlobalCandidate(tuple(float(v) for v in angles), shift, float(corr.flat[k])))
    results.sort(key=lambda r: -r.score)
    kept: list[GlobalCandidate] = []
    tol = math.radians(step_deg) * 1.01
    for r in results:
        if any(max(abs(p - q) for p, q in zip(r.angles_rad, s.angles_rad)) <= tol for s in kept):
            continue
        kept.append(r)
        if len(kept) >= keep:
            break
    return kept
