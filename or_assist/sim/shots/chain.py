"""The imaging chain of the shot simulator: blur, glare, noise, collimation, framing, text.

Pure array operations used by :mod:`or_assist.sim.shots.simulate`; each works on one
(H, W) image in detector or frame pixels and is deterministic given its inputs (the
random generator is passed in). Pixel centres follow ``CONVENTIONS.md``: the centre of
the top-left pixel is (0, 0), so a pixel ``(u, v)`` covers ``[u - 0.5, u + 0.5]``.

Examples
--------
>>> import numpy as np
>>> bin_mean(np.arange(16, dtype=np.float32).reshape(4, 4), 2)
array([[ 2.5,  4.5],
       [10.5, 12.5]], dtype=float32)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from or_assist.core.geometry import CArmGeometry
from or_assist.errors import InputError

__all__ = [
    "FrameLayout",
    "supersampled_geometry",
    "bin_mean",
    "gaussian_blur",
    "glare",
    "compress_range",
    "poisson_counts",
    "field_mask",
    "frame_layout",
    "place_in_frame",
    "frame_geometry",
    "burn_text",
    "quantise",
]

_TRUNCATE_SIGMAS = 4.0
_GLARE_WORK_SIGMA_PX = 4.0  # the broad glare kernel is applied on an image binned to this sigma


def supersampled_geometry(geometry: CArmGeometry, factor: int) -> CArmGeometry:
    """The same detector with each pixel split ``factor`` x ``factor``.

    The inverse of :meth:`CArmGeometry.downsampled`: binning an image rendered with the
    returned geometry by ``factor`` gives an image of ``geometry`` exactly
    (``u_fine = (u + 0.5) * factor - 0.5``).
    """
    if factor == 1:
        return geometry
    u0, v0 = geometry.principal_point_px
    px, py = geometry.pixel_spacing_mm
    return geometry.with_changes(
        image_size_px=(geometry.width * factor, geometry.height * factor),
        pixel_spacing_mm=(px / factor, py / factor),
        principal_point_px=((u0 + 0.5) * factor - 0.5, (v0 + 0.5) * factor - 0.5))


def bin_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` blocks: (H*f, W*f) -> (H, W) float32."""
    if factor == 1:
        return np.asarray(image, dtype=np.float32)
    h, w = image.shape[0] // factor, image.shape[1] // factor
    blocks = np.asarray(image, dtype=np.float32)[:h * factor, :w * factor]
    return blocks.reshape(h, factor, w, factor).mean(axis=(1, 3), dtype=np.float32)


def gaussian_blur(image: np.ndarray, sigma_u_px: float, sigma_v_px: float) -> np.ndarray:
    """Gaussian blur with standard deviations in pixels along u and v (float32).

    Edges are extended by reflection. A sigma below 0.05 px leaves that axis alone.
    """
    img = np.asarray(image, dtype=np.float32)
    if sigma_u_px < 0.05 and sigma_v_px < 0.05:
        return img.copy()

    def ksize(sigma):
        return 1 if sigma < 0.05 else 2 * int(math.ceil(_TRUNCATE_SIGMAS * sigma)) + 1

    return cv2.GaussianBlur(img, (ksize(sigma_u_px), ksize(sigma_v_px)),
                            sigmaX=max(sigma_u_px, 1e-3), sigmaY=max(sigma_v_px, 1e-3),
                            borderType=cv2.BORDER_REFLECT)


def glare(image: np.ndarray, fraction: float, sigma_u_px: float, sigma_v_px: float) -> np.ndarray:
    """Redistribute ``fraction`` of the signal with a broad Gaussian (scatter and veiling glare).

    ``out = (1 - fraction) * image + fraction * G(image)``, which keeps the total signal
    of a large flat field. The broad kernel is applied on a binned copy (so that its
    sigma is about 4 binned pixels) and interpolated back, which costs a few ms.
    Outside the image the signal is taken as zero (a collimated field glares only
    from inside).
    """
    img = np.asarray(image, dtype=np.float32)
    if fraction <= 0:
        return img.copy()
    broad = _broad_blur(img, sigma_u_px, sigma_v_px)
    return ((1.0 - fraction) * img + fraction * broad).astype(np.float32)


def _broad_blur(image: np.ndarray, sigma_u_px: float, sigma_v_px: float) -> np.ndarray:
    """A wide Gaussian blur (zero outside the image) computed on a binned copy."""
    h, w = image.shape
    f = max(1, int(min(sigma_u_px, sigma_v_px) // _GLARE_WORK_SIGMA_PX))
    small = cv2.resize(image, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    su, sv = sigma_u_px * small.shape[1] / w, sigma_v_px * small.shape[0] / h
    pad = int(math.ceil(_TRUNCATE_SIGMAS * max(su, sv)))
    padded = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0.0)
    blurred = gaussian_blur(padded, su, sv)[pad:pad + small.shape[0], pad:pad + small.shape[1]]
    return cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR)


def compress_range(log_image: np.ndarray, mask: np.ndarray, fraction: float,
                   sigma_u_px: float, sigma_v_px: float) -> np.ndarray:
    """Dynamic-range compression of a log image, as C-arm image processing does.

    Removes ``fraction`` of the broad-scale variation (a Gaussian low-pass over the
    field ``mask``, normalised so the field's edge is not pulled towards the outside):
    ``out = p - fraction * (lowpass(p) - mean(p over the field))``. Thick and thin
    regions come closer together while bone edges keep their contrast.
    """
    p = np.asarray(log_image, dtype=np.float32)
    m = np.asarray(mask, dtype=np.float32)
    if fraction <= 0 or not m.any():
        return p.copy()
    num = _broad_blur(p * m, sigma_u_px, sigma_v_px)
    den = _broad_blur(m, sigma_u_px, sigma_v_px)
    low = num / np.maximum(den, np.float32(1e-3))
    mean = np.float32(p[m > 0].mean())
    return (p - np.float32(fraction) * (low - mean)).astype(np.float32)


def poisson_counts(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson-distributed photon counts with the given means (float32, same shape)."""
    lam = np.clip(np.asarray(expected, dtype=np.float64), 0.0, None)
    return rng.poisson(lam).astype(np.float32)


def field_mask(size_px: tuple[int, int], kind: str | None, radius_fraction: float,
               u_of_x=None, v_of_y=None, *, offset_fraction: tuple[float, float] = (0.0, 0.0),
               leaf: tuple[float, float] | None = None) -> np.ndarray:
    """The collimated field of a detector image, optionally sampled on another pixel grid.

    Parameters
    ----------
    size_px : (width, height)
        The detector image the field is defined on; the field is centred on the image
        centre (moved by ``offset_fraction``) with radius (or half side)
        ``r = radius_fraction * min(width, height) / 2``.
    kind : {'circle', 'square', None}
        None: the whole detector image (``offset_fraction`` and ``leaf`` ignored).
    radius_fraction : float
    u_of_x, v_of_y : (W',) and (H',) float arrays, optional
        Detector coordinates of the columns and rows of the grid to sample on (default
        the detector's own pixels). Points outside the detector image are outside.
    offset_fraction : (du, dv)
        Shift of the field centre, in units of half the detector's smaller side.
    leaf : (distance_fraction, angle_deg) or None
        One collimator leaf cutting the field (a partial field): points farther than
        ``distance_fraction * r`` from the field centre along the image direction
        ``(cos angle, sin angle)`` (0 deg = +u, 90 deg = +v, down) are outside.

    Returns
    -------
    (H', W') bool ndarray
        True inside the field (a pixel whose centre lies inside).
    """
    w, h = size_px
    u = np.arange(w, dtype=np.float64) if u_of_x is None else np.asarray(u_of_x, dtype=np.float64)
    v = np.arange(h, dtype=np.float64) if v_of_y is None else np.asarray(v_of_y, dtype=np.float64)
    inside_u = (u >= -0.5) & (u < w - 0.5)
    inside_v = (v >= -0.5) & (v < h - 0.5)
    mask = inside_v[:, None] & inside_u[None, :]
    if kind is None:
        return mask
    half = min(w, h) / 2.0
    r = radius_fraction * half
    du = (u - (w - 1) / 2.0 - offset_fraction[0] * half)[None, :]
    dv = (v - (h - 1) / 2.0 - offset_fraction[1] * half)[:, None]
    if kind == "circle":
        mask = mask & (du * du + dv * dv <= r * r)
    else:
        mask = mask & (np.abs(du) <= r) & (np.abs(dv) <= r)
    if leaf is not None:
        a = math.radians(leaf[1])
        mask = mask & (du * math.cos(a) + dv * math.sin(a) <= leaf[0] * r)
    return mask


@dataclass(frozen=True)
class FrameLayout:
    """Where the detector image sits in the video frame.

    Attributes
    ----------
    frame_size_px : (width, height)
        The video frame.
    scaled_size_px : (width, height)
        The detector image after scaling (whole pixels).
    offset_px : (x, y)
        Frame pixel of the scaled image's top-left pixel.
    """

    frame_size_px: tuple[int, int]
    scaled_size_px: tuple[int, int]
    offset_px: tuple[int, int]

    def scale(self, detector_size_px: tuple[int, int]) -> tuple[float, float]:
        """Frame pixels per detector pixel along u and v."""
        return (self.scaled_size_px[0] / detector_size_px[0], self.scaled_size_px[1] / detector_size_px[1])


def frame_layout(detector_size_px: tuple[int, int], frame_size_px: tuple[int, int] | None,
                 scale: float | None, offset_px: tuple[int, int] | None) -> FrameLayout:
    """Place a detector image in a frame: fit (``scale=None``) and centre (``offset_px=None``).

    Without a frame size the frame is the image itself, scaled by ``scale`` (default 1).

    The same scale applies to both axes (rounded to whole pixels), so the aspect ratio
    is kept. Raises :class:`InputError` when the scaled image does not fit the frame.
    """
    w, h = detector_size_px
    if frame_size_px is None:  # the frame is the (scaled) image itself
        if offset_px is not None:
            raise InputError("needs frame_size_px (the frame to place the image in)", "frame_offset_px")
        sw, sh = max(1, int(round(w * (scale or 1.0)))), max(1, int(round(h * (scale or 1.0))))
        return FrameLayout((sw, sh), (sw, sh), (0, 0))
    fw, fh = frame_size_px
    s = min(fw / w, fh / h) if scale is None else scale
    sw, sh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    if sw > fw or sh > fh:
        raise InputError(f"the detector image scaled by {s:g} is {sw} x {sh} px, larger than the "
                         f"{fw} x {fh} frame; use a smaller frame_scale", "frame_scale")
    if offset_px is None:
        offset = ((fw - sw) // 2, (fh - sh) // 2)
    else:
        offset = (int(offset_px[0]), int(offset_px[1]))
        if offset[0] < 0 or offset[1] < 0 or offset[0] + sw > fw or offset[1] + sh > fh:
            raise InputError(f"places the {sw} x {sh} px image at {offset}, outside the {fw} x {fh} frame",
                             "frame_offset_px")
    return FrameLayout((fw, fh), (sw, sh), offset)


def place_in_frame(image: np.ndarray, layout: FrameLayout) -> np.ndarray:
    """Scale ``image`` (H, W) float32 into a black frame per ``layout`` -> (Hf, Wf) float32.

    Uses area averaging when shrinking and bilinear interpolation when enlarging (both
    with OpenCV's pixel-centre convention, matching :func:`frame_geometry`).
    """
    img = np.asarray(image, dtype=np.float32)
    sw, sh = layout.scaled_size_px
    if (sw, sh) != (img.shape[1], img.shape[0]):
        shrink = sw < img.shape[1] or sh < img.shape[0]
        img = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    fw, fh = layout.frame_size_px
    if (fw, fh) == (sw, sh):
        return img
    frame = np.zeros((fh, fw), np.float32)
    x, y = layout.offset_px
    frame[y:y + sh, x:x + sw] = img
    return frame


def frame_geometry(geometry: CArmGeometry, layout: FrameLayout) -> CArmGeometry:
    """The geometry of the frame's pixels: projecting with it lands on the frame.

    Detector pixel u maps to frame pixel ``(u + 0.5) * s - 0.5 + x0``; the pixel
    spacing becomes mm of detector per frame pixel (``px / s``); the distortion
    coefficients, on normalised coordinates, are unchanged.
    """
    su, sv = layout.scale(geometry.image_size_px)
    u0, v0 = geometry.principal_point_px
    x0, y0 = layout.offset_px
    px, py = geometry.pixel_spacing_mm
    return geometry.with_changes(
        image_size_px=layout.frame_size_px,
        pixel_spacing_mm=(px / su, py / sv),
        principal_point_px=((u0 + 0.5) * su - 0.5 + x0, (v0 + 0.5) * sv - 0.5 + y0))


def burn_text(frame: np.ndarray, top_lines, bottom_lines, value: float = 255.0) -> np.ndarray:
    """Draw white text into ``frame`` (in place) like a C-arm's video overlay.

    ``top_lines`` are stacked from the top-left corner down, ``bottom_lines`` from the
    bottom-left corner up; the font scales with the frame height. Text drawn over the
    image replaces it (maximum of text and image).

    Returns
    -------
    (H, W) bool ndarray
        The pixels the text touched.
    """
    h, w = frame.shape
    canvas = np.zeros((h, w), np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.3, h / 1080.0 * 0.9)
    thickness = max(1, int(round(h / 540.0)))
    (_, text_h), baseline = cv2.getTextSize("Ag", font, scale, thickness)
    line_h = int(round((text_h + baseline) * 1.5))
    margin = max(4, int(round(0.015 * h)))
    for i, line in enumerate(top_lines):
        y = margin + text_h + i * line_h
        cv2.putText(canvas, str(line), (margin, y), font, scale, 255, thickness, cv2.LINE_AA)
    for i, line in enumerate(reversed(list(bottom_lines))):
        y = h - margin - baseline - i * line_h
        cv2.putText(canvas, str(line), (margin, y), font, scale, 255, thickness, cv2.LINE_AA)
    mask = canvas > 0
    frame[mask] = np.maximum(frame[mask], canvas[mask].astype(np.float32) * (value / 255.0))
    return mask


def quantise(image: np.ndarray, bits: int) -> np.ndarray:
    """Quantise grey values in [0, 255] to ``bits`` bits and return them as uint8 (0-255)."""
    img = np.clip(np.asarray(image, dtype=np.float32), 0.0, 255.0)
    if bits >= 8:
        return np.rint(img).astype(np.uint8)
    levels = (1 << bits) - 1
    return np.rint(np.rint(img * (levels / 255.0)) * (255.0 / levels)).astype(np.uint8)
