"""Bead detection in a calibration image: dark blobs with sub-pixel centroids and sizes.

Steps (:func:`detect_beads`):

1. **Field**: the largest bright region of the frame with its holes filled (the
   collimated field; black surround and burnt-in text left out).
2. **Background**: a grey-level closing (a maximum then a minimum filter) wider than
   the largest bead fills every bead with the surrounding brightness; the bead signal
   is ``darkness = background - image``.
3. **Blobs**: connected regions of darkness above a threshold set from the noise and
   the beads' typical depth; blobs shallower than 10 noise sigmas or 10 % of the
   background brightness, and blobs too close to the field's edge (cut beads) or the
   image border, are left out.
4. **Centroid and size**: each blob's darkness-weighted centroid over its region grown
   by two pixels, after removing the local pedestal (a plane fitted to the ring of
   pixels around it); size as the diameter of a disc
   with the blob's mass over its peak (``2 sqrt(mass / (pi peak))``), which measures
   saturated (flat-topped) and faint blobs alike.

Kept over the libraries' blob detectors (issue 18, ``docs/library_comparison_libfov.md``,
the five single-image cases of ``benchmarks/calibration.py``): ``skimage.feature.blob_log``
finds every bead but at whole pixels, so the calibration's rms reprojection error is
0.40-0.43 px (target 0.3); OpenCV's ``SimpleBlobDetector`` is 3-6x faster and separates
touching shadows, but its centres are 1.1-3.8x further from the truth (rms 0.05-0.16 vs
0.025-0.14 px) and the reprojection error is worse in four of five cases (0.034-0.052 vs
0.024-0.035 px; better only at low dose, 0.116 vs 0.138 px).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from or_assist.core.validate import check_positive, is_integer
from or_assist.errors import InputError

__all__ = ["BeadDetections", "as_grey_image", "detect_beads"]

_MIN_IMAGE_PX = 32
_NOISE_SIGMAS = 6.0
_MIN_DEPTH_SIGMAS = 10.0      # a bead is at least this many noise sigmas ...
_MIN_DEPTH_FRACTION = 0.1    # ... and this share of the background brightness deep
_GROW_PX = 2


@dataclass(frozen=True, eq=False)
class BeadDetections:
    """Beads found in one image.

    Attributes
    ----------
    centres_px : (N, 2) float64
        Sub-pixel centroids ``(u, v)`` in the image's pixels (pixel centres at integers).
    diameters_px : (N,) float64
        Equivalent diameters (px).
    depth : (N,) float64
        Peak darkness of each blob (grey levels below the local background).
    elongation : (N,) float64
        Ratio of the blob's principal axes (second moments of its darkness), relative
        to the blobs' median shape (so a grabber's unequal axis scaling cancels);
        about 1 for a lone bead, more where a neighbouring shadow touches it.
    field_box_px : (x, y, w, h)
        Bounding box of the bright field in the image.
    image_size_px : (width, height)
    noise : float
        Robust standard deviation of the background darkness (grey levels).
    n_rejected_edge : int
        Blobs left out because they touch the field's edge or the image border.
    """

    centres_px: np.ndarray
    diameters_px: np.ndarray
    depth: np.ndarray
    elongation: np.ndarray
    field_box_px: tuple[int, int, int, int]
    image_size_px: tuple[int, int]
    noise: float
    n_rejected_edge: int

    def __len__(self) -> int:
        return len(self.centres_px)

    def subset(self, keep: np.ndarray) -> "BeadDetections":
        """The detections selected by a boolean or index array."""
        return BeadDetections(self.centres_px[keep], self.diameters_px[keep], self.depth[keep],
                              self.elongation[keep], self.field_box_px, self.image_size_px, self.noise, self.n_rejected_edge)


def as_grey_image(image, name: str = "image") -> np.ndarray:
    """A 2D float32 grey image from a (H, W) or (H, W, 3|4) (BGR[A]) numeric array."""
    if not isinstance(image, np.ndarray) or not (np.issubdtype(image.dtype, np.integer)
                                                 or np.issubdtype(image.dtype, np.floating)):
        raise InputError(f"expected a numeric image array, got {type(image).__name__}", name)
    img = image
    if img.ndim == 3 and img.shape[2] in (3, 4):
        img = img[:, :, :3].astype(np.float32) @ np.array([0.114, 0.587, 0.299], np.float32)
    if img.ndim != 2:
        raise InputError(f"expected a grey (H, W) or colour (H, W, 3) image, got shape {image.shape}", name)
    if min(img.shape) < _MIN_IMAGE_PX:
        raise InputError(f"is {img.shape[1]} x {img.shape[0]} px; at least {_MIN_IMAGE_PX} px per side "
                         "are needed", name)
    img = np.ascontiguousarray(img, dtype=np.float32)
    if not np.all(np.isfinite(img)):
        raise InputError("contains NaN or inf", name)
    return img


def _field_mask(img: np.ndarray, name: str) -> np.ndarray:
    """The largest bright region with its holes filled, (H, W) bool."""
    bright = float(np.percentile(img, 99.0))
    dark = float(np.percentile(img, 1.0))
    if bright - dark <= 0 or bright <= 0:
        raise InputError("has no bright field: the image is uniform (blank); expected a bright "
                         "field with dark beads", name)
    fg = (img > dark + 0.15 * (bright - dark)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n < 2:
        raise InputError("has no bright field (expected a bright field with dark beads)", name)
    big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    comp = labels == big
    # fill holes: background regions that do not touch the image border
    n2, lab2, st2, _ = cv2.connectedComponentsWithStats((~comp).astype(np.uint8), connectivity=4)
    h, w = img.shape
    for k in range(1, n2):
        x, y, bw, bh = st2[k, :4]
        if x > 0 and y > 0 and x + bw < w and y + bh < h:
            comp |= lab2 == k
    return comp


def detect_beads(image, *, max_bead_px: float | None = None, min_beads: int = 8,
                 name: str = "image") -> BeadDetections:
    """Find the beads of a calibration phantom in one image (module doc).

    Parameters
    ----------
    image : (H, W) or (H, W, 3) array
        The frame (any numeric dtype): dark beads on a bright field (the video
        convention, metal dark; invert a bone-white video first).
    max_bead_px : float, optional
        Largest bead diameter in pixels; default 3 % of the field's larger side.
    min_beads : int
        Fewer beads than this is an error.
    name : str
        Names the image in errors (e.g. its file).

    Returns
    -------
    BeadDetections

    Raises
    ------
    InputError
        Not an image, a blank image, or fewer than ``min_beads`` beads (with the count).
    """
    if not is_integer(min_beads) or min_beads < 1:
        raise InputError(f"must be an integer >= 1, got {min_beads!r}", "min_beads")
    img = as_grey_image(image, name)
    field = _field_mask(img, name)
    fy, fx = np.nonzero(field)
    box = (int(fx.min()), int(fy.min()), int(fx.max() - fx.min() + 1), int(fy.max() - fy.min() + 1))
    if max_bead_px is None:
        max_bead_px = 0.03 * max(box[2], box[3])
    check_positive(max_bead_px, "max_bead_px", "pixels")
    k = int(2 * np.ceil(0.75 * max_bead_px) + 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    filled = np.where(field, img, float(np.median(img[field]))).astype(np.float32)
    background = filled.copy()
    x0, y0 = max(box[0] - k, 0), max(box[1] - k, 0)
    x1, y1 = min(box[0] + box[2] + k, img.shape[1]), min(box[1] + box[3] + k, img.shape[0])
    background[y0:y1, x0:x1] = cv2.morphologyEx(filled[y0:y1, x0:x1], cv2.MORPH_CLOSE, kernel)
    darkness = background - filled
    dist = cv2.distanceTransform(field.astype(np.uint8), cv2.DIST_L2, 3)
    inner = dist > 2
    vals = darkness[inner]
    if vals.size < 100:
        raise InputError("has almost no bright field (fewer than 100 pixels)", name)
    med = float(np.median(vals))
    noise = float(1.4826 * np.median(np.abs(vals - med)))
    level = float(np.median(background[inner]))
    t1 = med + max(_NOISE_SIGMAS * noise, 0.04 * level, 1e-6)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(((darkness > t1) & inner).astype(np.uint8), connectivity=8)
    peaks = [float(darkness[y:y + bh, x:x + bw][labels[y:y + bh, x:x + bw] == lab].max())
             for lab, (x, y, bw, bh, _) in enumerate(stats) if lab > 0]
    typical = float(np.median(peaks)) if peaks else 0.0
    t2 = max(t1, med + 0.2 * (typical - med))
    min_depth = max(_MIN_DEPTH_SIGMAS * noise, _MIN_DEPTH_FRACTION * level)
    if t2 > t1:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(((darkness > t2) & inner).astype(np.uint8),
                                                               connectivity=8)
    h, w = img.shape
    centres, diams, depths, covs = [], [], [], []
    rejected = 0
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * _GROW_PX + 1, 2 * _GROW_PX + 1))
    pad = _GROW_PX + 2
    for lab in range(1, n):
        x, y, bw, bh, area = stats[lab]
        if area < 2:
            continue
        x0, y0, x1, y1 = x - pad, y - pad, x + bw + pad, y + bh + pad
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            rejected += 1
            continue
        lab_win = labels[y0:y1, x0:x1]
        own = cv2.dilate((lab_win == lab).astype(np.uint8), grow).astype(bool)
        own &= (lab_win == 0) | (lab_win == lab)
        d_win = darkness[y0:y1, x0:x1]
        ring = ~own & (lab_win == 0)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        pedestal = _pedestal(d_win, ring, xx - x0, yy - y0)
        wgt = np.where(own, d_win - pedestal, 0.0)
        mass = float(wgt.sum())
        peak = float((d_win - pedestal)[lab_win == lab].max())
        if mass <= 0 or peak < min_depth:
            continue
        cu, cv = float((wgt * xx).sum() / mass), float((wgt * yy).sum() / mass)
        diam = 2.0 * np.sqrt(mass / (np.pi * peak))
        du, dv = xx - cu, yy - cv
        cov = np.array([[(wgt * du * du).sum(), (wgt * du * dv).sum()],
                        [(wgt * du * dv).sum(), (wgt * dv * dv).sum()]]) / mass
        if not np.all(np.isfinite(cov)) or np.linalg.det(cov) <= 0:
            continue
        if dist[int(round(cv)), int(round(cu))] < 0.5 * diam + 3.0:
            rejected += 1
            continue
        centres.append((cu, cv))
        diams.append(diam)
        depths.append(peak)
        covs.append(cov / np.trace(cov))
    if len(centres) < min_beads:
        raise InputError(f"found {len(centres)} bead-like blobs, at least {min_beads} are needed: is the "
                         "phantom in the field, and are the beads dark (metal dark, not inverted)?", name)
    return BeadDetections(np.array(centres, dtype=np.float64), np.array(diams, dtype=np.float64),
                          np.array(depths, dtype=np.float64), _relative_elongation(np.array(covs)), box, (w, h),
                          noise, rejected)


def _pedestal(d_win: np.ndarray, ring: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray | float:
    """The background left under a blob: a plane fitted to its surrounding ring.

    A plane rather than a constant, so a brightness gradient across the bead (glare near
    the field's edge) does not pull the centroid.
    """
    if ring.sum() < 8:
        return float(np.median(d_win[ring])) if ring.any() else 0.0
    a = np.column_stack([np.ones(int(ring.sum())), xs[ring], ys[ring]])
    b = d_win[ring]
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    res = b - a @ coef
    mad = float(np.median(np.abs(res - np.median(res))))
    ok = np.abs(res - np.median(res)) <= 3.0 * 1.4826 * mad          # drop a neighbour's tail
    if 8 <= ok.sum() < len(b):
        coef, *_ = np.linalg.lstsq(a[ok], b[ok], rcond=None)
    return coef[0] + coef[1] * xs + coef[2] * ys


def _relative_elongation(shapes: np.ndarray) -> np.ndarray:
    """(N,) ratio of principal axes of each (2, 2) blob shape after undoing the common one.

    A grabber that scales the axes differently stretches every bead alike; whitening by
    the median shape leaves what is peculiar to each blob (a touching neighbour).
    """
    common = np.median(shapes, axis=0)
    val, vec = np.linalg.eigh(common)
    white = vec @ np.diag(1.0 / np.sqrt(np.maximum(val, 1e-12))) @ vec.T
    ev = np.linalg.eigvalsh(white @ shapes @ white)
    return np.sqrt(ev[:, 1] / np.maximum(ev[:, 0], 1e-12))
