"""Contrast normalisation and the mask-aware image pyramid used by registration.

:func:`pyramid` bins 2 x 2 per level from the top-left corner, consistently with
:meth:`or_assist.core.geometry.CArmGeometry.downsampled` (``u_new = (u + 0.5) / 2 - 0.5``).

Examples
--------
>>> import numpy as np
>>> img = np.arange(16, dtype=np.float32).reshape(4, 4)
>>> m = np.ones((4, 4), bool); m[0, 0] = False
>>> pyramid(img, m, 2)[1][0].round(3)      # top-left: the mean of 1, 4 and 5
array([[ 3.333,  4.5  ],
       [10.5  , 12.5  ]], dtype=float32)
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from or_assist.core.validate import is_integer
from or_assist.errors import InputError

__all__ = ["normalise", "pyramid"]


def _check_image_mask(image, mask) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(image, np.ndarray) or image.ndim != 2 or not np.issubdtype(image.dtype, np.number):
        raise InputError(f"must be a numeric (H, W) array, got {getattr(image, 'shape', type(image).__name__)}",
                         "image")
    m = np.asarray(mask)
    if m.shape != image.shape:
        raise InputError(f"must have the image's shape {image.shape}, got {m.shape}", "mask")
    return image, m.astype(bool, copy=False)


def normalise(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero mean and unit standard deviation inside ``mask``; zero outside.

    Parameters
    ----------
    image : (H, W) numeric ndarray
    mask : (H, W) bool ndarray

    Returns
    -------
    (H, W) float32 ndarray

    Raises
    ------
    InputError
        Shapes differ, the mask selects fewer than 2 pixels, or the image is constant
        (or not finite) inside it.
    """
    image, m = _check_image_mask(image, mask)
    if np.count_nonzero(m) < 2:
        raise InputError("selects fewer than 2 pixels", "mask")
    f = image.astype(np.float32, copy=True)
    mean, std = cv2.meanStdDev(f, mask=m.view(np.uint8))
    mean, std = float(mean[0, 0]), float(std[0, 0])
    if not (math.isfinite(mean) and math.isfinite(std)) or std <= 1e-12 * max(1.0, abs(mean)):
        raise InputError(f"is constant or not finite inside the mask (std {std:g})", "image")
    f -= np.float32(mean)
    f *= np.float32(1.0 / std)
    f[~m] = 0.0
    return f


def pyramid(image: np.ndarray, mask: np.ndarray, levels: int,
            min_valid_fraction: float = 0.5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Mask-aware 2 x 2 binning, level by level.

    Level 0 is ``(image, mask)`` as float32/bool; level ``k`` has pixels binned
    ``2**k`` x ``2**k`` from the top-left corner (a trailing odd row or column is
    dropped), matching ``geometry.downsampled(2**k)``: its pixel ``(u, v)`` is centred
    on level-0 pixel ``(2**k * (u + 0.5) - 0.5, ...)``. A binned pixel is the mean of
    its valid children and is valid when at least ``min_valid_fraction`` of them are;
    invalid pixels are 0.

    Parameters
    ----------
    image : (H, W) numeric ndarray
    mask : (H, W) bool ndarray
    levels : int
        Number of levels returned (>= 1), while each side stays >= 2 px.
    min_valid_fraction : float
        In (0, 1].

    Returns
    -------
    list of ((H_k, W_k) float32, (H_k, W_k) bool)
    """
    image, m = _check_image_mask(image, mask)
    if not is_integer(levels) or levels < 1:
        raise InputError(f"must be an integer >= 1, got {levels!r}", "levels")
    if not (isinstance(min_valid_fraction, (int, float)) and 0 < min_valid_fraction <= 1):
        raise InputError(f"must be in (0, 1], got {min_valid_fraction!r}", "min_valid_fraction")
    if min(image.shape) >> (levels - 1) < 2:
        raise InputError(f"{levels} levels bin a {image.shape} image below 2 px", "levels")
    img = image.astype(np.float32, copy=True)
    img[~m] = 0.0
    weight = m.astype(np.float32)
    out = [(img, m.copy())]
    for _ in range(levels - 1):
        h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
        num = cv2.resize(img[:h, :w] * weight[:h, :w], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        den = cv2.resize(weight[:h, :w], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        valid = den >= np.float32(min_valid_fraction - 1e-6)
        img = np.where(valid, num / np.maximum(den, np.float32(1e-6)), np.float32(0.0)).astype(np.float32)
        weight = valid.astype(np.float32)
        out.append((img, valid))
    return out
