"""Image similarity measures for 2D/3D registration, all restricted to a mask.

Each measure compares a *fixed* image (the preprocessed shot, attenuation-like: higher
= more attenuating) with a *moving* image (a DRR's line integrals) on the pixels where
``mask`` is true, and returns a score in [-1, 1] where higher is better (1 = the images
agree up to a gain and an offset). The measures are invariant to the fixed image's gain
and offset, so the C-arm's unknown display window does not matter; gradient-based
ones also ignore the slowly varying part the C-arm's range compression removes.

* ``ncc``: normalised cross-correlation of the intensities.
* ``gc``: gradient correlation, the mean of the NCC of the horizontal and the vertical
  derivatives (Penney et al. 1998).
* ``pgc``: patch-wise gradient NCC: the gradient NCC averaged over square patches,
  weighted by the DRR's gradient energy in each patch (local gain and offset
  invariance; robust to the range compression and to scatter that varies across the
  field).

For repeated comparisons against one shot, :class:`FixedImage` precomputes the fixed
image's statistics (:func:`prepare_fixed`); :func:`similarity` is the one-off form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from or_assist.core.validate import is_integer
from or_assist.errors import InputError

__all__ = ["METRICS", "DEFAULT_METRIC", "FixedImage", "prepare_fixed", "similarity", "ncc",
           "gradient_correlation", "patch_gradient_ncc", "gradients"]

#: Names of the measures, as written in ``or_assist.registration/1`` ("metric").
METRICS = ("ncc", "gc", "pgc")
#: The default measure (chosen by ``benchmarks/registration.py``; see its output).
DEFAULT_METRIC = "gc"
_EPS = 1e-12
_MIN_PIXELS = 16


def gradients(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Central differences of ``image`` and where both neighbours are valid.

    Parameters
    ----------
    image : (H, W) float array
    mask : (H, W) bool array

    Returns
    -------
    gu, gv : (H, W) float32 arrays
        Derivatives along u (columns) and v (rows), per pixel.
    mu, mv : (H, W) bool arrays
        Pixels whose derivative uses only valid pixels.
    """
    img = np.asarray(image, dtype=np.float32)
    gu, gv = _image_gradients(img)
    mu = np.zeros(img.shape, bool)
    mv = np.zeros(img.shape, bool)
    mu[:, 1:-1] = mask[:, 2:] & mask[:, :-2] & mask[:, 1:-1]
    mv[1:-1, :] = mask[2:, :] & mask[:-2, :] & mask[1:-1, :]
    return gu, gv, mu, mv


def _image_gradients(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of a float32 image (0 in the first and last column / row)."""
    gu = np.zeros_like(img)
    gv = np.zeros_like(img)
    gu[:, 1:-1] = 0.5 * (img[:, 2:] - img[:, :-2])
    gv[1:-1, :] = 0.5 * (img[2:, :] - img[:-2, :])
    return gu, gv


def _centred(a: np.ndarray) -> tuple[np.ndarray, float]:
    """``a`` (float64) minus its mean, and the result's norm: one side of an NCC, prepared once."""
    a = np.asarray(a, dtype=np.float64)
    a = a - a.mean() if a.size else a
    return a, float(np.sqrt(np.sum(a * a)))


def _ncc_centred(a: np.ndarray, a_norm: float, b: np.ndarray) -> float:
    """NCC of a prepared side (:func:`_centred`) and a 1-D array (0 when either is constant).

    The fixed side is centred once; this is what every evaluation of ``ncc`` and ``gc``
    computes. Plain ufunc reductions, not ``np.dot``: BLAS may start threads per call, which
    on a busy two-core machine costs milliseconds per evaluation.
    """
    if a.size < _MIN_PIXELS:
        return 0.0
    b = b.astype(np.float64)
    b -= b.mean()
    den = a_norm * float(np.sqrt(np.sum(b * b)))
    return float(np.sum(a * b) / den) if den > _EPS else 0.0


@dataclass(frozen=True, eq=False)
class FixedImage:
    """A fixed image prepared for one measure (build with :func:`prepare_fixed`).

    Attributes
    ----------
    metric : str
        One of :data:`METRICS`.
    image : (H, W) float32 ndarray
        The fixed image.
    mask : (H, W) bool ndarray
        Valid pixels.
    patch_px : int
        Patch side for ``pgc``.
    """

    metric: str
    image: np.ndarray
    mask: np.ndarray
    patch_px: int
    _parts: tuple

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape

    def score(self, moving: np.ndarray) -> float:
        """Similarity of ``moving`` ((H, W) float, the fixed image's shape) to this image."""
        moving = np.asarray(moving, dtype=np.float32)
        if moving.shape != self.image.shape:
            raise InputError(f"must have the fixed image's shape {self.image.shape}, got {moving.shape}", "moving")
        if self.metric == "ncc":
            (idx, a, na), = self._parts
            return _ncc_centred(a, na, moving.reshape(-1)[idx])
        if self.metric == "gc":
            # the moving image's central differences at the compared pixels only (halved or
            # not: the correlation does not change with scale)
            flat, w = moving.reshape(-1), moving.shape[1]
            (iu, au, nu), (iv, av, nv) = self._parts
            return 0.5 * (_ncc_centred(au, nu, flat[iu + 1] - flat[iu - 1])
                          + _ncc_centred(av, nv, flat[iv + w] - flat[iv - w]))
        gu, gv = _image_gradients(moving)
        return _patch_score(self._parts, gu, gv, self.patch_px)


def _patch_view(a: np.ndarray, p: int) -> np.ndarray:
    """(H, W) -> (nh, nw, p*p) non-overlapping patches (cropped to whole patches)."""
    h, w = a.shape[0] // p, a.shape[1] // p
    return a[:h * p, :w * p].reshape(h, p, w, p).swapaxes(1, 2).reshape(h, w, p * p)


def _prepare_patches(gu, gv, mu, mv, p):
    parts = []
    for g, m in ((gu, mu), (gv, mv)):
        gp = _patch_view(g, p).astype(np.float64)
        mp = _patch_view(m, p).astype(np.float64)
        n = mp.sum(-1)
        ok = n >= max(4, p * p // 2)
        mean = np.where(ok, (gp * mp).sum(-1) / np.maximum(n, 1), 0.0)
        centred = (gp - mean[..., None]) * mp
        energy = (centred ** 2).sum(-1)
        parts.append((mp, n, ok, centred, energy))
    return tuple(parts)


def _patch_score(parts, gu, gv, p) -> float:
    num = 0.0
    den = 0.0
    for (mp, n, ok, fc, fe), g in zip(parts, (gu, gv)):
        gp = _patch_view(g, p).astype(np.float64) * mp
        mean = gp.sum(-1) / np.maximum(n, 1)
        mc = (gp - mean[..., None]) * mp
        me = (mc ** 2).sum(-1)
        cross = (fc * mc).sum(-1)
        valid = ok & (me > _EPS) & (fe > _EPS)
        local = np.where(valid, cross / np.sqrt(np.where(valid, fe * me, 1.0)), 0.0)
        weight = np.where(valid, np.sqrt(me), 0.0)
        num += float((local * weight).sum())
        den += float(weight.sum())
    return num / den if den > _EPS else 0.0


def prepare_fixed(image: np.ndarray, mask: np.ndarray, metric: str = DEFAULT_METRIC,
                  patch_px: int = 8) -> FixedImage:
    """Precompute what ``metric`` needs of the fixed image.

    Parameters
    ----------
    image : (H, W) float array
        The shot (attenuation-like).
    mask : (H, W) bool array
        Pixels to compare (the field without text, metal and saturation).
    metric : {'ncc', 'gc', 'pgc'}
    patch_px : int
        Patch side in pixels for ``pgc`` (>= 3).

    Returns
    -------
    FixedImage
    """
    if metric not in METRICS:
        raise InputError(f"must be one of {', '.join(METRICS)}, got {metric!r}", "metric")
    img = np.asarray(image, dtype=np.float32)
    m = np.asarray(mask, dtype=bool)
    if img.ndim != 2 or m.shape != img.shape:
        raise InputError(f"image must be 2-D and mask of the same shape, got {img.shape} and {m.shape}", "mask")
    if not is_integer(patch_px) or patch_px < 3:
        raise InputError(f"must be an integer >= 3, got {patch_px!r}", "patch_px")
    if metric == "ncc":
        idx = np.flatnonzero(m)
        parts = ((idx, *_centred(img.reshape(-1)[idx])),)
    else:
        gu, gv, mu, mv = gradients(img, m)
        if metric == "gc":
            iu, iv = np.flatnonzero(mu), np.flatnonzero(mv)
            parts = ((iu, *_centred(gu.reshape(-1)[iu])), (iv, *_centred(gv.reshape(-1)[iv])))
        else:
            parts = _prepare_patches(gu, gv, mu, mv, int(patch_px))
    return FixedImage(metric, img, m, int(patch_px), parts)


def similarity(fixed: np.ndarray, moving: np.ndarray, mask: np.ndarray, metric: str = DEFAULT_METRIC,
               patch_px: int = 8) -> float:
    """Similarity of two images on ``mask`` (module doc); higher is better, at most 1.

    Parameters
    ----------
    fixed, moving : (H, W) float arrays
    mask : (H, W) bool array
    metric : {'ncc', 'gc', 'pgc'}
    patch_px : int
        Patch side for ``pgc``.

    Returns
    -------
    float
    """
    return prepare_fixed(fixed, mask, metric, patch_px).score(moving)


def ncc(fixed: np.ndarray, moving: np.ndarray, mask: np.ndarray) -> float:
    """Normalised cross-correlation on ``mask`` (see :func:`similarity`)."""
    return similarity(fixed, moving, mask, "ncc")


def gradient_correlation(fixed: np.ndarray, moving: np.ndarray, mask: np.ndarray) -> float:
    """Gradient correlation on ``mask`` (see :func:`similarity`)."""
    return similarity(fixed, moving, mask, "gc")


def patch_gradient_ncc(fixed: np.ndarray, moving: np.ndarray, mask: np.ndarray, patch_px: int = 8) -> float:
    """Patch-wise gradient NCC on ``mask`` (see :func:`similarity`)."""
    return similarity(fixed, moving, mask, "pgc", patch_px)
