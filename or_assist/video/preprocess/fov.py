"""The collimated field of view of a fluoroscopy frame: detection and tracking.

A C-arm's video shows the image inside a round (image intensifier) or square/rectangular
(flat panel) field with a black surround, often with burnt-in text around it.
:func:`detect_field_of_view` finds that field in two passes:

1. **Coarse**, on a copy binned to about 480 px: pixels brighter than the black level
   (estimated on the frame's border) + 10 grey levels; the largest connected component,
   holes filled, is the field candidate, joined (as their convex hull) with the large lit
   pieces near it when black bars (rails, retractors, cables) cut the field apart. A
   *circle* is fitted by RANSAC to its outer contour (points on the frame's edge ignored;
   failing that, to the contour's points on its convex hull: a ragged or notched rim), a
   *rectangle* to its sides; the shape more contour points lie on wins.
2. **Fine**, at full resolution: intensity profiles across the coarse edge (256 rays for
   a circle, 64 profiles per side for a rectangle) each give the edge as the outermost
   half-way crossing between the field's local level and the black level; a robust
   (RANSAC, then least-squares) circle fit, or the median per side, gives the result.

Dark regions touching the edge (metal, or direct exposure in a bone-bright image) and
text touching the field only spoil some profiles, which the robust fits reject.

Frames that are blank, saturated, coloured, noise-like or featureless raise
:class:`~or_assist.errors.InputError` naming ``frame``.
:class:`FieldOfViewTracker` keeps the estimate stable over a video stream.

Coordinates: pixel centres, the top-left pixel's centre at (0, 0) (``CONVENTIONS.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from or_assist.core.validate import check_choice, check_positive
from or_assist.errors import InputError
from or_assist.video.preprocess.fov_fit import arc_coverage, coarse_rectangle, fine_circle, fine_rectangle, ransac_circle
from or_assist.video.preprocess.frame import as_gray_uint8, colourfulness

__all__ = ["FOV_SHAPES", "FieldOfView", "detect_field_of_view", "FieldOfViewTracker", "check_fov", "gray_and_fov"]

FOV_SHAPES = ("circle", "rectangle")

_COARSE_SIDE_PX = 480        # the coarse pass works at about this size
_BLACK_MARGIN = 10           # grey levels above the black level that count as "field"
_MIN_FIELD_FRACTION = 0.03   # a field smaller than this share of the frame is no field
_MIN_PIECE_FRACTION = 0.01   # lit pieces this large (of the frame) may be parts of one field
_COARSE_TOLERANCE = 0.005    # of the frame's larger side: a ragged outline's points on a circle
_BAR_FRACTION = 0.1          # dark bars across the field up to this share of the frame's height
_HULL_TOLERANCE = 1.5        # coarse pixels: outline points this far inside its convex hull are not rim
_HULL_SHARE = 0.2            # share of the outline's points on its hull that make a rim fit a circle...
_MIN_RIM_ARC = 0.5           # ... or share of that circle's circumference they cover
_MAX_CHROMA = 25.0           # median chroma above which a frame is not fluoroscopy
_MIN_NEIGHBOUR_CORR = 0.5    # neighbouring pixels of an image correlate; noise does not
_MIN_DETAIL = 0.5            # grey levels of fine detail below which the field is featureless


@dataclass(frozen=True)
class FieldOfView:
    """The collimated field in pixel coordinates of one image.

    Attributes
    ----------
    shape : {'circle', 'rectangle'}
    center_px : (u, v)
        Centre of the circle or of the box.
    radius_px : float or None
        Circle: pixel centres within this distance of the centre are inside.
    box_px : (u0, v0, u1, v1) or None
        Rectangle: pixel centres with ``u0 <= u <= u1`` and ``v0 <= v <= v1`` are inside.
    """

    shape: str
    center_px: tuple[float, float]
    radius_px: float | None = None
    box_px: tuple[float, float, float, float] | None = None

    def __post_init__(self):
        check_choice(self.shape, FOV_SHAPES, "shape")
        cu, cv = (float(x) for x in self.center_px)
        object.__setattr__(self, "center_px", (cu, cv))
        if self.shape == "circle":
            check_positive(self.radius_px, "radius_px", expected="a finite radius > 0 for a circle")
            object.__setattr__(self, "radius_px", float(self.radius_px))
        else:
            if self.box_px is None or len(self.box_px) != 4:
                raise InputError(f"a rectangle needs (u0, v0, u1, v1), got {self.box_px!r}", "box_px")
            u0, v0, u1, v1 = (float(x) for x in self.box_px)
            if not (u1 > u0 and v1 > v0):
                raise InputError(f"needs u1 > u0 and v1 > v0, got {(u0, v0, u1, v1)}", "box_px")
            object.__setattr__(self, "box_px", (u0, v0, u1, v1))

    @property
    def box(self) -> tuple[float, float, float, float]:
        """``(u0, v0, u1, v1)``: the box of a rectangle, the bounding box of a circle."""
        if self.shape == "rectangle":
            return self.box_px
        cu, cv = self.center_px
        r = self.radius_px
        return (cu - r, cv - r, cu + r, cv + r)

    def mask(self, shape_hw: tuple[int, int], erode_px: float = 3.0) -> np.ndarray:
        """Pixels inside the field, ``erode_px`` away from its edge.

        A rectangle's mask is exact; a circle's is drawn as a polygon through each
        row's first and last pixel centre within ``radius_px - erode_px``, exact to
        within one pixel at the edge (where the edge is steep).

        Parameters
        ----------
        shape_hw : (H, W)
            Of the image the mask is for.
        erode_px : float
            Margin inside the edge (default 3: the edge itself is blurred).

        Returns
        -------
        (H, W) bool ndarray
        """
        return self.mask_u8(shape_hw, erode_px).view(bool)

    def mask_u8(self, shape_hw: tuple[int, int], erode_px: float = 3.0) -> np.ndarray:
        """:meth:`mask` as ``uint8`` 0/1 (for OpenCV)."""
        h, w = int(shape_hw[0]), int(shape_hw[1])
        out = np.zeros((h, w), np.uint8)
        cu, cv = self.center_px
        if self.shape == "circle":
            r = self.radius_px - erode_px
            if r <= 0:
                return out
            v = np.arange(max(0, math.ceil(cv - r)), min(h, math.floor(cv + r) + 1))
            half = np.sqrt(np.clip(r * r - (v - cv) ** 2, 0.0, None))
            lo = np.ceil(cu - half).astype(np.int64)
            hi = np.floor(cu + half).astype(np.int64)
            keep = hi >= lo
            if keep.any():  # one polygon through every row's first and last pixel
                v, lo, hi = v[keep], lo[keep], hi[keep]
                poly = np.concatenate([np.stack([lo, v], 1), np.stack([hi, v], 1)[::-1]])
                cv2.fillPoly(out, [np.clip(poly, -32768, 32767).astype(np.int32).reshape(-1, 1, 2)], 1)
        else:
            u0, v0, u1, v1 = self.box_px
            a, b = max(0, math.ceil(u0 + erode_px)), min(w, math.floor(u1 - erode_px) + 1)
            c, d = max(0, math.ceil(v0 + erode_px)), min(h, math.floor(v1 - erode_px) + 1)
            if b > a and d > c:
                out[c:d, a:b] = 1
        return out

    def crop_box(self, shape_hw: tuple[int, int], margin_px: int = 2) -> tuple[int, int, int, int]:
        """Whole-pixel ``(u_min, v_min, width, height)`` holding the field, clipped to the image."""
        u0, v0, u1, v1 = self.box
        h, w = int(shape_hw[0]), int(shape_hw[1])
        a = max(0, int(math.floor(u0)) - margin_px)
        b = max(0, int(math.floor(v0)) - margin_px)
        c = min(w, int(math.ceil(u1)) + margin_px + 1)
        d = min(h, int(math.ceil(v1)) + margin_px + 1)
        if c <= a or d <= b:
            raise InputError(f"{self} does not overlap a {w} x {h} image", "fov")
        return a, b, c - a, d - b

    def differs(self, other: "FieldOfView", tolerance_px: float) -> bool:
        """True when shape differs or any centre/size/edge moved more than ``tolerance_px``."""
        if other.shape != self.shape:
            return True
        return bool(np.max(np.abs(np.subtract(self.box, other.box))) > tolerance_px)


# --------------------------------------------------------------------------- detection


def detect_field_of_view(frame: np.ndarray) -> FieldOfView:
    """Find the collimated field of a fluoroscopy frame (module docstring).

    Parameters
    ----------
    frame : (H, W) or (H, W, 3) ndarray
        uint8, uint16 or float, grey or BGR, as a grabber delivers it.

    Returns
    -------
    FieldOfView
        In the frame's pixel coordinates.

    Raises
    ------
    InputError
        ``frame``: bad array, blank, saturated, coloured, no field found, or the field
        holds no plausible fluoroscopic image (noise-like or featureless).
    """
    gray = as_gray_uint8(frame, "frame")
    chroma = colourfulness(frame)
    if chroma > _MAX_CHROMA:
        raise InputError(f"is a colour image (median chroma {chroma:.0f} of 255), not fluoroscopy", "frame")
    return _detect(gray)


def _detect(gray: np.ndarray) -> FieldOfView:
    h, w = gray.shape
    s = max(1, max(h, w) // _COARSE_SIDE_PX)
    small = cv2.resize(gray, (w // s, h // s), interpolation=cv2.INTER_AREA) if s > 1 else gray
    if int(small.max()) < 16:
        raise InputError("is blank (all black): no field of view", "frame")
    if np.count_nonzero(small >= 250) > 0.9 * small.size:
        raise InputError("is saturated (all white): no image in it", "frame")
    ring = np.concatenate([small[:2].ravel(), small[-2:].ravel(), small[:, :2].ravel(), small[:, -2:].ravel()])
    black = float(np.percentile(ring, 5))
    dark = ring[ring <= black + 20].astype(np.float32)
    noise = 1.4826 * float(np.median(np.abs(dark - np.median(dark))))
    thr = int(min(max(black + _BLACK_MARGIN, 12), 60))
    edge_level = black + max(3.0, 4.0 * noise)   # the full-resolution edge: first rise above this
    fg = _join_pieces((small > thr).astype(np.uint8))
    contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        raise InputError("shows no field of view (nothing above the black level)", "frame")
    contour = max(contours, key=cv2.contourArea)
    if cv2.contourArea(contour) < _MIN_FIELD_FRACTION * small.size:
        raise InputError("shows no field of view (no bright region larger than "
                         f"{_MIN_FIELD_FRACTION:.0%} of the frame)", "frame")
    contour = contour.reshape(-1, 2)
    filled = np.zeros_like(fg)
    cv2.drawContours(filled, [contour.reshape(-1, 1, 2)], -1, 1, thickness=-1)
    _check_content(small, filled)
    hs, ws = small.shape
    c = contour.astype(np.float64)
    on_edge = (c[:, 0] <= 0) | (c[:, 0] >= ws - 1) | (c[:, 1] <= 0) | (c[:, 1] >= hs - 1)
    pts = (c[~on_edge] + 0.5) * s - 0.5          # full-resolution pixel coordinates
    x, y, bw, bh = cv2.boundingRect(contour.reshape(-1, 1, 2))
    box = ((x + 0.0) * s - 0.5, (y + 0.0) * s - 0.5, (x + bw) * s - 0.5, (y + bh) * s - 0.5)
    if len(pts) < 10:  # the field fills the frame: the whole frame is the field
        return FieldOfView("rectangle", ((w - 1) / 2.0, (h - 1) / 2.0), box_px=(0.0, 0.0, w - 1.0, h - 1.0))
    tight = 1.5 * s                             # a coarse pixel and a half
    tol = tight
    circle = ransac_circle(pts, tol=tol, max_radius=max(h, w))
    if circle is None:
        # the coarse outline is ragged where the field's rim is dim (an intensifier's
        # vignetting, low dose): the fine pass measures the edge, this one only finds it
        tol = max(tight, _COARSE_TOLERANCE * max(h, w))
        circle = ransac_circle(pts, tol=tol, max_radius=max(h, w))
    on_circle = pts
    if circle is None:
        # a pin's notch outvotes the rim's arc, or dark anatomy as black as the surround makes
        # the rim ragged: the field is convex, so its rim is on the outline's hull (a frame
        # cut by dark bays is no circle: most of the outline, or half a rim, on one)
        on_circle = pts[_on_hull(contour, ~on_edge)]
        hull = ransac_circle(on_circle, tol=tol, max_radius=max(h, w)) if len(on_circle) >= 10 else None
        if hull is not None and (len(on_circle) >= _HULL_SHARE * len(pts)
                                 or arc_coverage(on_circle, hull, tol) >= _MIN_RIM_ARC):
            circle = hull
    n_circle = 0 if circle is None else int((np.abs(np.hypot(on_circle[:, 0] - circle[0], on_circle[:, 1] - circle[1])
                                                    - circle[2]) < tol).sum())
    rect, n_rect = coarse_rectangle(pts, box, tight, (w, h), s)
    if rect is not None and n_rect >= n_circle:
        u0, v0, u1, v1 = fine_rectangle(gray, edge_level, black, rect, s)
        return FieldOfView("rectangle", (0.5 * (u0 + u1), 0.5 * (v0 + v1)), box_px=(u0, v0, u1, v1))
    if circle is None:
        raise InputError("shows no round or rectangular field of view", "frame")
    cu, cv, r = fine_circle(gray, edge_level, black, circle, s)
    return FieldOfView("circle", (cu, cv), radius_px=r)


def _on_hull(contour: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Of the (N, 2) ``contour`` points where ``keep``, which lie within
    :data:`_HULL_TOLERANCE` of the contour's convex hull (bool, one per kept point)."""
    hull = cv2.convexHull(contour.reshape(-1, 1, 2).astype(np.int32))
    pts = contour[keep]
    return np.array([cv2.pointPolygonTest(hull, (float(x), float(y)), True) <= _HULL_TOLERANCE
                     for x, y in pts], dtype=bool).reshape(len(pts))


def _join_pieces(fg: np.ndarray) -> np.ndarray:
    """The field candidate in ``fg`` (uint8 0/1): the largest lit piece, joined with the
    pieces of at least :data:`_MIN_PIECE_FRACTION` of the frame that lie within
    :data:`_BAR_FRACTION` of the frame's height of it, as their filled convex hull.

    Table rails, retractors and cables across the field are as black as the surround
    and cut the field into pieces, and dark anatomy cuts bays into them; the field
    (a circle or a box, with or without a straight leaf) is convex, so it is the hull of
    its pieces. Smaller pieces (burnt-in text) and pieces further away (another image
    or panel on the monitor) stay out.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n < 3:
        return fg
    areas = stats[1:, cv2.CC_STAT_AREA]
    big = [int(i) + 1 for i in np.argsort(areas)[::-1] if areas[i] >= _MIN_PIECE_FRACTION * fg.size]
    if len(big) < 2:
        return fg
    joined = (labels == big[0]).astype(np.uint8)
    gap = _BAR_FRACTION * fg.shape[0]
    rest = big[1:]
    while rest:
        dist = cv2.distanceTransform(1 - joined, cv2.DIST_L2, 3)
        near = [i for i in rest if float(dist[labels == i].min()) <= gap]
        if not near:
            break
        joined[np.isin(labels, near)] = 1
        rest = [i for i in rest if i not in near]
    if len(rest) == len(big) - 1:   # nothing near the largest piece: the frame as it is
        return fg
    hull = np.zeros_like(fg)
    cv2.fillConvexPoly(hull, cv2.convexHull(cv2.findNonZero(joined)), 1)
    return hull


def _check_content(small: np.ndarray, filled: np.ndarray) -> None:
    """Reject fields without a plausible image: noise-like or featureless."""
    inner = cv2.erode(filled, np.ones((5, 5), np.uint8)).astype(bool)
    if inner.sum() < 64:
        raise InputError("shows no field of view large enough to hold an image", "frame")
    f = small.astype(np.float32)
    pair = inner[:, :-1] & inner[:, 1:]
    a, b = f[:, :-1][pair][::3].astype(np.float64), f[:, 1:][pair][::3].astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    sa, sb = math.sqrt(float((a * a).sum())), math.sqrt(float((b * b).sum()))
    if sa > 0.5 * math.sqrt(len(a)) and sb > 0.5 * math.sqrt(len(b)):
        corr = float((a * b).sum()) / (sa * sb)
        if corr < _MIN_NEIGHBOUR_CORR:
            raise InputError(f"looks like noise, not an X-ray image (neighbouring pixels correlate "
                             f"{corr:.2f} < {_MIN_NEIGHBOUR_CORR})", "frame")
    detail = float((f - cv2.blur(f, (5, 5)))[inner].std())
    if detail < _MIN_DETAIL:
        raise InputError(f"is featureless inside its bright region (detail {detail:.2f} grey levels): "
                         "not an X-ray image", "frame")


# --------------------------------------------------------------------------- tracking


class FieldOfViewTracker:
    """A field-of-view estimate that stays put over a video stream.

    Each :meth:`update` detects the field in the new frame. A detection within
    ``tolerance_px`` of the current estimate (every edge) leaves the estimate unchanged
    (no jitter); a clearly different one replaces it only after ``confirm_frames``
    consecutive frames agree on it (a new collimation, zoom mode or monitor layout).
    Frames without a field (blank between shots, a menu) keep the current estimate.

    Parameters
    ----------
    confirm_frames : int
        Consecutive agreeing frames needed to switch (>= 1; default 3).
    tolerance_px : float
        Largest change of any edge that counts as the same field (default 3 px).
    """

    def __init__(self, confirm_frames: int = 3, tolerance_px: float = 3.0):
        if isinstance(confirm_frames, bool) or not isinstance(confirm_frames, int) or confirm_frames < 1:
            raise InputError(f"must be an integer >= 1, got {confirm_frames!r}", "confirm_frames")
        check_positive(tolerance_px, "tolerance_px")
        self.confirm_frames = confirm_frames
        self.tolerance_px = float(tolerance_px)
        self.current: FieldOfView | None = None
        self._pending: FieldOfView | None = None
        self._count = 0

    def reset(self) -> None:
        """Forget the estimate (e.g. another video source)."""
        self.current, self._pending, self._count = None, None, 0

    def update(self, frame: np.ndarray) -> FieldOfView:
        """Detect in ``frame`` and return the stable estimate.

        Raises
        ------
        InputError
            ``frame`` is bad, or shows no field while there is no estimate yet.
        """
        try:
            new = detect_field_of_view(frame)
        except InputError:
            if self.current is None:
                raise
            return self.current
        if self.current is None:
            self.current = new
            return new
        if not new.differs(self.current, self.tolerance_px):
            self._pending, self._count = None, 0
            return self.current
        if self._pending is not None and not new.differs(self._pending, self.tolerance_px):
            self._count += 1
        else:
            self._pending, self._count = new, 1
        if self._count >= self.confirm_frames:
            self.current, self._pending, self._count = new, None, 0
        return self.current


def check_fov(fov, name: str = "fov") -> None:
    """Raise :class:`InputError` unless ``fov`` is None or a :class:`FieldOfView`."""
    if fov is not None and not isinstance(fov, FieldOfView):
        raise InputError(f"must be None or a FieldOfView, got {type(fov).__name__}", name)


def gray_and_fov(frame: np.ndarray, fov: FieldOfView | None) -> tuple[np.ndarray, FieldOfView]:
    """The frame as 8-bit grey and its field of view (detected when not given)."""
    gray = as_gray_uint8(frame, "frame")
    check_fov(fov)
    return gray, (detect_field_of_view(gray) if fov is None else fov)
