"""Polarity of a fluoroscopy frame: is bone dark (the usual display) or bright (inverted)?

:func:`detect_polarity` decides from the **noise**: quantum noise in a log image grows
where fewer photons arrive, i.e. where attenuation is high, so in a bone-dark image the
dark pixels are the noisy ones and in a bone-bright image the bright ones (the rule is
documented on the function). It returns one of
:data:`or_assist.core.vocabulary.DETECTED_POLARITIES`.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from or_assist.video.preprocess.fov import FieldOfView, gray_and_fov

__all__ = ["detect_polarity", "polarity_score"]

_POLARITY_WORK_PX = 384      # the noise analysis runs on the field binned to about this size
_POLARITY_MIN_CORR = 0.25    # |rank correlation| below which the noise cue is undecided
_SATURATION_MARGIN = 0.02    # fallback cue: share of white minus black pixels in the field


def polarity_score(frame: np.ndarray, fov: FieldOfView | None = None) -> float:
    """Rank correlation (-1..1) between local brightness and local noise inside the field.

    Negative: the dark pixels are the noisy ones (bone dark); positive: bone bright;
    NaN when too few unsaturated pixels remain. See :func:`detect_polarity`.
    """
    gray, fov = gray_and_fov(frame, fov)
    return _polarity_score(gray, fov)


def _polarity_score(gray: np.ndarray, fov: FieldOfView, inner: np.ndarray | None = None) -> float:
    """:func:`polarity_score` on a grey uint8 image; ``inner``: ``fov.mask_u8(shape, 8.0)``."""
    h, w = gray.shape
    if inner is None:
        inner = fov.mask_u8((h, w), erode_px=8.0)
    u, v, cw, ch = fov.crop_box((h, w), margin_px=0)
    roi = gray[v:v + ch, u:u + cw]
    field = inner[v:v + ch, u:u + cw]
    f = max(1, int(math.ceil(max(cw, ch) / _POLARITY_WORK_PX)))
    if f > 1:  # integer binning (OpenCV's fast path)
        size = (max(8, cw // f), max(8, ch // f))
        roi = cv2.resize(roi[: size[1] * f, : size[0] * f], size, interpolation=cv2.INTER_AREA)
        field = cv2.resize(field[: size[1] * f, : size[0] * f], size, interpolation=cv2.INTER_NEAREST)
    g = roi.astype(np.float32)
    resid = g - cv2.GaussianBlur(g, (5, 5), 1.0)
    mean = cv2.blur(g, (15, 15))
    var = cv2.blur(resid * resid, (15, 15))
    unsaturated = cv2.erode(((roi > 3) & (roi < 252)).view(np.uint8), np.ones((9, 9), np.uint8))
    ok = (field > 0) & (unsaturated > 0) & (mean > 20) & (mean < 235)
    n = np.count_nonzero(ok)
    if n < 200:
        return float("nan")
    step = max(1, n // 8000)
    a, b = mean[ok][::step], np.log(var[ok][::step] + 1e-3)
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    ra -= ra.mean()
    rb -= rb.mean()
    return float((ra * rb).sum() / math.sqrt(float((ra * ra).sum()) * float((rb * rb).sum())))


def detect_polarity(frame: np.ndarray, fov: FieldOfView | None = None) -> str:
    """Is bone dark (the usual C-arm display) or bright (inverted) in this frame?

    The rule:

    1. **Noise** (primary). Quantum noise in a log-displayed X-ray image is larger
       where fewer photons arrive, i.e. where attenuation is high. Inside the field
       (binned to about 384 px, saturated pixels and their neighbours left out), the
       rank correlation between local brightness and local noise variance is
       negative in a bone-dark image and positive in a bone-bright one;
       ``|correlation| >= 0.25`` decides.
    2. **Direct exposure** (fallback, for noise-free images). The share of saturated
       white minus saturated black pixels in the field: air beside the patient clips
       white and metal clips black in a bone-dark image, the opposite when inverted;
       a margin of 2 % of the field decides.
    3. Otherwise ``'unknown'``.

    Parameters
    ----------
    frame : (H, W) or (H, W, 3) ndarray
    fov : FieldOfView, optional
        Detected when not given.

    Returns
    -------
    {'bone-dark', 'bone-bright', 'unknown'}
    """
    gray, fov = gray_and_fov(frame, fov)
    return _detect_polarity(gray, fov)


def _detect_polarity(gray: np.ndarray, fov: FieldOfView, inner: np.ndarray | None = None) -> str:
    """:func:`detect_polarity` on a grey uint8 image; ``inner``: ``fov.mask_u8(shape, 8.0)``."""
    if inner is None:
        inner = fov.mask_u8(gray.shape, erode_px=8.0)
    rho = _polarity_score(gray, fov, inner)
    if math.isfinite(rho) and abs(rho) >= _POLARITY_MIN_CORR:
        return "bone-dark" if rho < 0 else "bone-bright"
    vals = gray[::2, ::2][inner[::2, ::2] > 0]
    if vals.size == 0:
        return "unknown"
    white = np.count_nonzero(vals >= 250) / vals.size
    black = np.count_nonzero(vals <= 5) / vals.size
    if white - black >= _SATURATION_MARGIN:
        return "bone-dark"
    if black - white >= _SATURATION_MARGIN:
        return "bone-bright"
    return "unknown"
