"""Intensifier and image-processing steps of the shot chain: vignetting, S-distortion, edge enhancement.

Pure array operations on one (H, W) detector image, used by
:mod:`or_assist.sim.shots.simulate` when :class:`~or_assist.sim.shots.settings.ShotSettings`
asks for them (all off by default). Radii are measured from the detector image's centre
``((W - 1) / 2, (H - 1) / 2)`` in pixels; ``R = min(W, H) / 2`` is the radius of the
intensifier's input screen (the largest circle the image holds).

* :func:`vignetting_gain`: the light fall-off of an intensifier's output optics,
  ``g(r) = 1 - strength * min(r / R, 1) ** 2`` (1 at the centre, ``1 - strength`` at the
  screen's edge and beyond).
* :func:`s_distortion`: the image intensifier's S-distortion (the earth's magnetic field
  bends the electron paths): content at radius ``r`` is turned about the centre so that
  it moves tangentially by ``amplitude_px * sin(pi * r / R)`` (exactly so along the arc;
  nothing moves at the centre or at and beyond ``R``, the most at ``R / 2``); a straight
  line through the centre becomes an S. The warp keeps radii, so a circular field stays
  put.
* :func:`unsharp_mask`: edge enhancement, ``out = x + gain * (x - G_radius(x))``.

Examples
--------
>>> import numpy as np
>>> g = vignetting_gain((5, 5), 0.4)
>>> float(g[2, 2]), round(float(g[2, 0]), 3)
(1.0, 0.744)
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from or_assist.sim.shots.chain import gaussian_blur

__all__ = ["vignetting_gain", "s_distortion", "s_distortion_shift_px", "unsharp_mask"]


def _radius_grid(size_px: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, float]:
    w, h = size_px
    du = np.arange(w, dtype=np.float64)[None, :] - (w - 1) / 2.0
    dv = np.arange(h, dtype=np.float64)[:, None] - (h - 1) / 2.0
    return du, dv, min(w, h) / 2.0


def vignetting_gain(size_px: tuple[int, int], strength: float) -> np.ndarray:
    """Relative gain of each detector pixel: ``1 - strength * min(r / R, 1) ** 2``.

    Parameters
    ----------
    size_px : (width, height)
    strength : float
        Fall-off at the screen's edge, 0 (none) to 1.

    Returns
    -------
    (H, W) float32 ndarray
    """
    du, dv, big_r = _radius_grid(size_px)
    rho2 = np.minimum((du * du + dv * dv) / (big_r * big_r), 1.0)
    return (1.0 - strength * rho2).astype(np.float32)


def s_distortion(image: np.ndarray, amplitude_px: float) -> np.ndarray:
    """Warp an (H, W) image with the S-distortion of amplitude ``amplitude_px`` (module doc).

    Returns
    -------
    (H, W) float32 ndarray
        Bilinear resampling (edges reflected); the input unchanged when the amplitude
        is 0.
    """
    img = np.asarray(image, dtype=np.float32)
    if amplitude_px == 0:
        return img.copy()
    h, w = img.shape
    du, dv, big_r = _radius_grid((w, h))
    r = np.hypot(du, dv)
    # content at radius r turns by phi(r) = d(r) / r; output pixel x' samples x = Rot(-phi) x'
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(r < big_r, amplitude_px * np.sin(np.pi * r / big_r) / r, 0.0)
    phi = np.where(r > 0, phi, 0.0)
    c, s = np.cos(phi), np.sin(phi)
    map_u = (c * du + s * dv + (w - 1) / 2.0).astype(np.float32)
    map_v = (-s * du + c * dv + (h - 1) / 2.0).astype(np.float32)
    return cv2.remap(img, map_u, map_v, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def s_distortion_shift_px(radius_px: float, amplitude_px: float, screen_radius_px: float) -> float:
    """How far (px, along the arc) the S-distortion moves content at ``radius_px``."""
    if radius_px >= screen_radius_px:
        return 0.0
    return amplitude_px * math.sin(math.pi * radius_px / screen_radius_px)


def unsharp_mask(image: np.ndarray, radius_px: float, gain: float) -> np.ndarray:
    """Edge enhancement: ``image + gain * (image - gaussian_blur(image, radius_px))`` (float32).

    Parameters
    ----------
    image : (H, W) array
    radius_px : float
        Standard deviation of the Gaussian, pixels.
    gain : float
        0 leaves the image alone; 1 doubles the detail finer than the radius.
    """
    img = np.asarray(image, dtype=np.float32)
    if gain == 0 or radius_px <= 0:
        return img.copy()
    return (img + np.float32(gain) * (img - gaussian_blur(img, radius_px, radius_px))).astype(np.float32)
