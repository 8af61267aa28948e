"""Display model: DRR line integrals -> an image that looks like the C-arm's video.

A C-arm shows the transmitted intensity ``I = I0 * exp(-p)`` of each ray (``p`` the
line integral of attenuation, what :mod:`or_assist.render.drr` returns), after a log or
contrast curve, dynamic-range compression, windowing and a monitor gamma, with bone and
metal **dark** and air white (``CONVENTIONS.md``: images as the video output shows them).
:func:`to_display` applies the same chain so a virtual view and a live frame look alike
side by side:

1. range compression (``range_compression`` > 0): the broad-scale variation of ``p``
   (body thickness: several nepers across a view of the pelvis, 0 in the air beside
   it) is removed in part, ``p - f * (lowpass(p) - mean(p))`` with a Gaussian low-pass
   of ``compression_sigma_fraction`` of the image's smaller side, as a C-arm's image
   processing does (and as the shot simulator models,
   :func:`or_assist.sim.shots.chain.compress_range`); bone edges keep their contrast;
2. quantity: ``mode="log"`` uses ``p`` itself (``= -ln(I / I0)``, the usual
   log-subtracted fluoroscopy look); ``mode="transmitted"`` uses ``I = i0 * exp(-p)``
   (linear intensity, flatter bone contrast);
3. window: ``(low, high)`` in that quantity's units, or automatic from percentiles of
   the (compressed) ``p`` (:func:`auto_window`) over the *metering field*: the central
   disc of ``metering_fraction`` of the image (a C-arm's brightness metering), within
   ``mask`` if given, without ``metal``; mapped linearly to 0..1 and clipped;
4. polarity: bone and metal dark when ``bone_dark`` (default), then ``invert`` flips
   (a C-arm's invert button);
5. gamma on the displayed brightness ``b`` (0 black .. 1 white): ``b ** gamma``
   (gamma < 1 lifts the dark bone, > 1 deepens it);
6. output ``uint8`` (0..255) or ``float32`` (0..1).

:class:`DisplaySettings` defaults to the plain chain (no compression, window over the
whole image); :data:`CARM_DISPLAY`, what :func:`to_display` uses without settings and
what the virtual view library, the plan sheet, the planner's live views and the OR
display's virtual view use, is the C-arm look: compression 0.8 over 4 % of the image,
window from the 1st to the 99th percentile of the central 60 %. Without compression a
real CT's views wash out: the window must span air to the thickest body, and bone
detail (a few tenths of a neper) gets a few grey levels.

Metal (``metal``: its line integrals) is added after the anatomy's compression and
window, so it saturates black as on a C-arm and does not lighten its surroundings.

A 1024 x 1024 frame takes a few milliseconds without compression and about 20 ms with
it (vectorised numpy, the low-pass on a binned copy, a look-up table for gamma in
``uint8`` output).

Examples
--------
>>> p = np.array([[0.0, 1.0], [2.0, 4.0]], dtype=np.float32)
>>> to_display(p, DisplaySettings(window=(0.0, 4.0))).tolist()
[[255, 191], [128, 0]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from or_assist.core.validate import check_choice, check_finite, check_number, check_positive
from or_assist.errors import InputError

__all__ = ["DISPLAY_MODES", "OUTPUT_TYPES", "CARM_DISPLAY", "DisplaySettings", "auto_window", "compress_range",
           "metering_mask", "to_display"]

DISPLAY_MODES = ("log", "transmitted")
OUTPUT_TYPES = ("uint8", "float32")

_AUTO_MAX_SAMPLES = 1 << 17   # auto window: percentiles of at most this many pixels
_LUT_SIZE = 4096
_LOWPASS_WORK_SIGMA_PX = 4.0  # the compression's low-pass runs on a copy binned to about this sigma
_MIN_SIGMA_PX = 0.5           # a low-pass narrower than this compresses nothing: skipped


def _check_percentiles(percentiles) -> tuple[float, float]:
    try:
        lo, hi = percentiles
    except (TypeError, ValueError):
        raise InputError(f"must be two numbers (low, high), got {percentiles!r}", "percentiles") from None
    lo, hi = check_finite(lo, "percentiles"), check_finite(hi, "percentiles")
    if not 0 <= lo < hi <= 100:
        raise InputError(f"must satisfy 0 <= low < high <= 100, got {(lo, hi)}", "percentiles")
    return lo, hi


@dataclass(frozen=True)
class DisplaySettings:
    """How line integrals are shown (module doc).

    Attributes
    ----------
    mode : {"log", "transmitted"}
        Quantity shown: line integral ``p`` or transmitted intensity ``i0 * exp(-p)``.
    i0 : float
        Unattenuated intensity (> 0). Scales the ``transmitted`` quantity (so a fixed
        ``window`` is in its units); the simulator reads it as photons per pixel for
        quantum noise. No effect in ``log`` mode.
    window : (low, high) or None
        Display window in the mode's units (``p``, or intensity); None = automatic.
    percentiles : (low, high)
        Automatic window: percentiles of ``p`` (0-100; after the range compression, over
        the metering field) mapped to the window's ends.
    gamma : float
        > 0; applied to the displayed brightness, ``b ** gamma``.
    bone_dark : bool
        Bone and metal dark, air white (the C-arm look, default).
    invert : bool
        Flip the result (as a C-arm's invert button).
    output : {"uint8", "float32"}
        0..255 ``uint8`` or 0..1 ``float32``.
    range_compression : float
        Share (0-1) of the broad-scale variation of ``p`` removed before the window
        (:func:`compress_range`); 0 = none (default), :data:`CARM_DISPLAY` 0.8.
    compression_sigma_fraction : float
        Standard deviation of the compression's Gaussian low-pass as a fraction of the
        image's smaller side (0.005-0.5; default 0.04, about 12 mm at the detector of a
        30 cm field, as the shot simulator's).
    metering_fraction : float
        Automatic window from the central disc of this fraction (0.1-1) of the image's
        smaller side (:func:`metering_mask`); 1 (default) = the whole image.
    """

    mode: str = "log"
    i0: float = 1.0
    window: tuple[float, float] | None = None
    percentiles: tuple[float, float] = (1.0, 99.5)
    gamma: float = 1.0
    bone_dark: bool = True
    invert: bool = False
    output: str = "uint8"
    range_compression: float = 0.0
    compression_sigma_fraction: float = 0.04
    metering_fraction: float = 1.0

    def __post_init__(self):
        check_choice(self.mode, DISPLAY_MODES, "mode")
        check_choice(self.output, OUTPUT_TYPES, "output")
        i0 = check_positive(self.i0, "i0")
        gamma = check_positive(self.gamma, "gamma")
        for name in ("bone_dark", "invert"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InputError(f"must be True or False, got {getattr(self, name)!r}", name)
        window = self.window
        if window is not None:
            try:
                lo, hi = window
            except (TypeError, ValueError):
                raise InputError(f"must be None or two numbers (low, high), got {window!r}", "window") from None
            lo, hi = check_finite(lo, "window"), check_finite(hi, "window")
            if lo >= hi:
                raise InputError(f"low must be below high, got {(lo, hi)}", "window")
            window = (lo, hi)
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "percentiles", _check_percentiles(self.percentiles))
        object.__setattr__(self, "i0", i0)
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "bone_dark", bool(self.bone_dark))
        object.__setattr__(self, "invert", bool(self.invert))
        object.__setattr__(self, "range_compression",
                           check_number(self.range_compression, "range_compression", 0.0, 1.0))
        object.__setattr__(self, "compression_sigma_fraction",
                           check_number(self.compression_sigma_fraction, "compression_sigma_fraction", 0.005, 0.5))
        object.__setattr__(self, "metering_fraction",
                           check_number(self.metering_fraction, "metering_fraction", 0.1, 1.0))


#: The C-arm look (module doc): range compression 0.8 over 4 % of the image, window from the
#: 1st to the 99th percentile of the central 60 %, log, bone dark, uint8. The default of
#: :func:`to_display` and of every virtual view (library, plan sheet, planner, OR display).
CARM_DISPLAY = DisplaySettings(percentiles=(1.0, 99.0), range_compression=0.8, metering_fraction=0.6)


def _check_image(line_integrals) -> np.ndarray:
    p = line_integrals
    if not isinstance(p, np.ndarray) or p.ndim != 2 or p.size == 0 or not np.issubdtype(p.dtype, np.number):
        raise InputError(f"must be a non-empty numeric (H, W) array, got "
                         f"{getattr(p, 'shape', type(p).__name__)}", "line_integrals")
    p = np.asarray(p, dtype=np.float32)
    if not math.isfinite(float(p.sum(dtype=np.float64))):
        raise InputError("contains NaN or inf", "line_integrals")
    return p


def _check_mask(mask, shape) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != shape:
        raise InputError(f"must have the image's shape {shape}, got {m.shape}", "mask")
    m = m.astype(bool, copy=False)
    if not m.any():
        raise InputError("selects no pixel", "mask")
    return m


def auto_window(line_integrals: np.ndarray, mask: np.ndarray | None = None,
                percentiles: Sequence[float] = (1.0, 99.5), *, mode: str = "log",
                i0: float = 1.0) -> tuple[float, float]:
    """A display window from percentiles of the line integrals.

    Parameters
    ----------
    line_integrals : (H, W) float array
        ``p`` (dimensionless).
    mask : (H, W) bool array, optional
        Only these pixels count (e.g. the field of view).
    percentiles : (low, high)
        Of ``p``, 0-100; at most 2**17 pixels (an even subsample) are used.
    mode, i0
        As :class:`DisplaySettings`: the window is returned in the mode's units
        (``transmitted``: ``(i0 * exp(-p_high), i0 * exp(-p_low))``).

    Returns
    -------
    (low, high) : tuple of float
        ``low < high`` (a flat image gets a tiny window above its value).
    """
    settings = DisplaySettings(mode=mode, i0=i0, percentiles=tuple(percentiles))
    p = _check_image(line_integrals)
    m = _check_mask(mask, p.shape)
    vals = p.ravel() if m is None else p[m]
    stride = max(1, -(-vals.size // _AUTO_MAX_SAMPLES))
    lo, hi = (float(x) for x in np.percentile(vals[::stride], settings.percentiles))
    if hi <= lo:
        hi = lo + max(1e-6, 1e-6 * abs(lo))
    if settings.mode == "transmitted":
        lo, hi = settings.i0 * math.exp(-hi), settings.i0 * math.exp(-lo)
        if hi <= lo:
            hi = lo * (1 + 1e-6) + 1e-30
    return lo, hi


def metering_mask(shape: tuple[int, int], fraction: float, mask: np.ndarray | None = None) -> np.ndarray:
    """The metering field: the central disc of ``fraction`` of the image's smaller side.

    Parameters
    ----------
    shape : (H, W)
    fraction : float
        Diameter of the disc over the image's smaller side (0.1-1); 1 = the whole image
        (no disc).
    mask : (H, W) bool array, optional
        Only these pixels count; when the disc holds none of them, the whole mask.

    Returns
    -------
    (H, W) bool ndarray
    """
    fraction = check_number(fraction, "metering_fraction", 0.1, 1.0)
    h, w = int(shape[0]), int(shape[1])
    m = _check_mask(mask, (h, w))
    if fraction >= 1.0:
        return np.ones((h, w), bool) if m is None else m
    r = 0.5 * fraction * min(h, w)
    dv = (np.arange(h) - (h - 1) / 2.0)[:, None]
    du = (np.arange(w) - (w - 1) / 2.0)[None, :]
    disc = du * du + dv * dv <= r * r
    if m is None:
        return disc
    both = disc & m
    return both if both.any() else m


def _lowpass(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """A wide Gaussian blur (edges reflected) computed on a binned copy, float32."""
    h, w = image.shape
    f = max(1, int(sigma_px // _LOWPASS_WORK_SIGMA_PX))
    f = min(f, max(1, min(h, w) // 4))
    if f > 1:
        small = cv2.resize(image, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    else:
        small = image
    s_u, s_v = sigma_px * small.shape[1] / w, sigma_px * small.shape[0] / h
    blurred = cv2.GaussianBlur(small, (0, 0), sigmaX=s_u, sigmaY=s_v, borderType=cv2.BORDER_REFLECT)
    if f > 1:
        blurred = cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR)
    return blurred.astype(np.float32, copy=False)


def compress_range(line_integrals: np.ndarray, fraction: float, sigma_fraction: float = 0.04,
                   mask: np.ndarray | None = None) -> np.ndarray:
    """Dynamic-range compression of line integrals, as a C-arm's image processing does.

    ``out = p - fraction * (lowpass(p) - mean(p over mask))``: the broad-scale variation
    (body thickness, air beside the body) shrinks by ``fraction`` while detail finer
    than the low-pass (bone edges, cortices, foramina) keeps its contrast.

    Parameters
    ----------
    line_integrals : (H, W) float array
        ``p``, finite.
    fraction : float
        0-1; 0 returns a copy.
    sigma_fraction : float
        Standard deviation of the Gaussian low-pass over the image's smaller side
        (0.005-0.5); below half a pixel nothing is compressed.
    mask : (H, W) bool array, optional
        Pixels whose mean is kept (e.g. the metering field); default all.

    Returns
    -------
    (H, W) float32 ndarray
    """
    p = _check_image(line_integrals)
    fraction = check_number(fraction, "range_compression", 0.0, 1.0)
    sigma_fraction = check_number(sigma_fraction, "compression_sigma_fraction", 0.005, 0.5)
    m = _check_mask(mask, p.shape)
    sigma_px = sigma_fraction * min(p.shape)
    if fraction == 0.0 or sigma_px < _MIN_SIGMA_PX:
        return p.copy()
    low = _lowpass(p, sigma_px)
    mean = np.float32(p.mean(dtype=np.float64) if m is None else p[m].mean(dtype=np.float64))
    low -= mean
    low *= np.float32(fraction)
    return np.subtract(p, low, dtype=np.float32)


def to_display(line_integrals: np.ndarray, settings: DisplaySettings | None = None, *,
               mask: np.ndarray | None = None, metal: np.ndarray | None = None) -> np.ndarray:
    """Map line integrals to a displayable image (module doc).

    Parameters
    ----------
    line_integrals : (H, W) float array
        ``p`` from a DRR (the anatomy, or anatomy plus metal), finite.
    settings : DisplaySettings, optional
        Default :data:`CARM_DISPLAY` (the C-arm look: range compression, metered window,
        log, bone dark, uint8).
    mask : (H, W) bool array, optional
        Pixels the automatic window may be computed from (e.g. the field of view).
    metal : (H, W) float array, optional
        Line integrals of metal (implants, pins), added after the compression and the
        window of ``line_integrals`` so the metal shows black and leaves its
        surroundings as they are.

    Returns
    -------
    (H, W) uint8 (0..255) or float32 (0..1) ndarray
    """
    s = CARM_DISPLAY if settings is None else settings
    if not isinstance(s, DisplaySettings):
        raise InputError(f"expected DisplaySettings, got {type(s).__name__}", "settings")
    p = _check_image(line_integrals)
    m = _check_mask(mask, p.shape)
    if metal is not None:
        metal_p = _check_image(metal)
        if metal_p.shape != p.shape:
            raise InputError(f"must have the image's shape {p.shape}, got {metal_p.shape}", "metal")
    metered = None
    if s.window is None or s.range_compression > 0:
        metered = metering_mask(p.shape, s.metering_fraction, m)
    if s.range_compression > 0:
        p = compress_range(p, s.range_compression, s.compression_sigma_fraction, metered)
    lo, hi = s.window if s.window is not None else auto_window(p, metered, s.percentiles, mode=s.mode, i0=s.i0)
    if metal is not None:
        p = p + metal_p
    if s.mode == "log":
        value = p
        dense_high = True
    else:
        value = np.exp(-p)
        if s.i0 != 1.0:
            value *= np.float32(s.i0)
        dense_high = False
    # brightness b = clip(scale * value + offset): t = (value - lo) / (hi - lo), b = t or 1 - t
    dark = s.bone_dark != s.invert           # dense -> dark
    flip = dense_high == dark                # b = 1 - t
    scale = (-1.0 if flip else 1.0) / (hi - lo)
    offset = (1.0 + lo / (hi - lo)) if flip else (-lo / (hi - lo))
    b = np.multiply(value, np.float32(scale), dtype=np.float32)
    b += np.float32(offset)
    np.clip(b, 0.0, 1.0, out=b)
    if s.output == "float32":
        if s.gamma != 1.0:
            np.power(b, np.float32(s.gamma), out=b)
        return b
    if s.gamma == 1.0:
        b *= np.float32(255.0)
        b += np.float32(0.5)
        return b.astype(np.uint8)
    lut = np.round(255.0 * np.linspace(0.0, 1.0, _LUT_SIZE) ** s.gamma).astype(np.uint8)
    b *= np.float32(_LUT_SIZE - 1)
    b += np.float32(0.5)
    return lut[b.astype(np.uint16)]
