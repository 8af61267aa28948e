"""Reformatted CT slices for the planner: axial, coronal, sagittal and implant-oblique planes.

A :class:`SlicePlane` is a rectangle of pixels in the patient frame (LPS mm): pixel
``(col, row)`` (column right, row down, ``(0, 0)`` the centre of the top-left pixel) lies
at ``centre + (col - (W-1)/2) * pixel_mm * u + (row - (H-1)/2) * pixel_mm * v``.
:func:`reslice` samples the CT there (trilinear, :meth:`CTVolume.sample_hu`), so any CT
direction matrix, flips and oblique scanner axes included, gives correctly oriented
slices.

Screen orientation (radiological convention, as a CT workstation shows it):

* axial: seen from the feet; patient right on screen left (``u = +x``, patient left),
  anterior up (``v = +y``, posterior down);
* coronal: seen from the front; patient right on screen left (``u = +x``), head up
  (``v = -z``);
* sagittal: seen from the patient's left; anterior on screen left (``u = +y``), head up
  (``v = -z``);
* oblique *along* an implant: contains the axis (entry on the left, apex on the right)
  and the direction of the axis' steepest climb towards the head (or posterior); the
  *across* plane is perpendicular to the axis, through a point on it, seen from the
  entry.

Window presets (level, width in HU): ``bone`` (400, 1800) and ``soft tissue`` (40, 400).

Examples
--------
>>> plane = orthogonal_plane(ct, "axial", ct_centre_lps(ct))    # doctest: +SKIP
>>> image = window_image(reslice(ct, plane), "bone")              # (H, W) uint8  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from or_assist.core.validate import check_positive, check_vector
from or_assist.errors import InputError

__all__ = [
    "ORTHOGONAL_KINDS",
    "WINDOW_PRESETS",
    "SlicePlane",
    "ct_centre_lps",
    "ct_bounds_lps",
    "orthogonal_plane",
    "oblique_planes",
    "reslice",
    "window_image",
]

ORTHOGONAL_KINDS = ("axial", "coronal", "sagittal")
#: (level, width) in HU.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {"bone": (400.0, 1800.0), "soft tissue": (40.0, 400.0)}

_X = np.array([1.0, 0.0, 0.0])
_Y = np.array([0.0, 1.0, 0.0])
_Z = np.array([0.0, 0.0, 1.0])
_ORTHO_AXES = {  # (u, v, normal): normal = u x v points away from the viewer
    "axial": (_X, _Y),
    "coronal": (_X, -_Z),
    "sagittal": (_Y, -_Z),
}


@dataclass(frozen=True, eq=False)
class SlicePlane:
    """A sampled plane in the patient frame (module doc).

    Attributes
    ----------
    name : str
        e.g. ``"axial"``, ``"oblique along"``.
    centre_lps_mm : (3,) float64
        LPS position of the image centre, mm.
    u_axis, v_axis : (3,) float64
        Orthonormal LPS directions of increasing column and row.
    pixel_mm : float
        Pixel size (square), mm.
    width_px, height_px : int
    """

    name: str
    centre_lps_mm: np.ndarray
    u_axis: np.ndarray
    v_axis: np.ndarray
    pixel_mm: float
    width_px: int
    height_px: int

    @property
    def normal(self) -> np.ndarray:
        """(3,) unit normal ``u x v`` (pointing away from the viewer)."""
        return np.cross(self.u_axis, self.v_axis)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height_px, width_px)``."""
        return (self.height_px, self.width_px)

    def pixel_to_lps(self, cols, rows) -> np.ndarray:
        """LPS points (mm) of pixel positions.

        Parameters
        ----------
        cols, rows : float or array_like
            Column and row (pixels, may be fractional), broadcast together.

        Returns
        -------
        (..., 3) float64 ndarray, LPS mm
        """
        c = np.asarray(cols, dtype=np.float64) - 0.5 * (self.width_px - 1)
        r = np.asarray(rows, dtype=np.float64) - 0.5 * (self.height_px - 1)
        return (self.centre_lps_mm + self.pixel_mm * (c[..., None] * self.u_axis + r[..., None] * self.v_axis))

    def lps_to_pixel(self, points_lps_mm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel positions of LPS points projected onto the plane.

        Returns
        -------
        cols, rows : ndarray of float64
            Shape of the points without the last axis.
        distance_mm : ndarray of float64
            Signed distance of each point from the plane (along :attr:`normal`).
        """
        d = np.asarray(points_lps_mm, dtype=np.float64) - self.centre_lps_mm
        cols = d @ self.u_axis / self.pixel_mm + 0.5 * (self.width_px - 1)
        rows = d @ self.v_axis / self.pixel_mm + 0.5 * (self.height_px - 1)
        return cols, rows, d @ self.normal

    def contains_pixel(self, col: float, row: float) -> bool:
        """Whether a pixel position lies on the image (within half a pixel of the edge ones)."""
        return bool(-0.5 <= col <= self.width_px - 0.5 and -0.5 <= row <= self.height_px - 0.5)


def ct_bounds_lps(ct) -> tuple[np.ndarray, np.ndarray]:
    """LPS axis-aligned bounding box ``(min, max)`` (mm) of the CT's voxel-centre box."""
    c = ct.corners_lps_mm()
    return c.min(axis=0), c.max(axis=0)


def ct_centre_lps(ct) -> np.ndarray:
    """(3,) LPS centre of the CT's voxel-centre box, mm."""
    lo, hi = ct_bounds_lps(ct)
    return 0.5 * (lo + hi)


def _pixel_mm(ct, pixel_mm) -> float:
    if pixel_mm is None:
        return float(np.min(ct.spacing_mm))
    return check_positive(pixel_mm, "pixel_mm", "mm")


def orthogonal_plane(ct, kind: str, cursor_lps_mm, pixel_mm: float | None = None) -> SlicePlane:
    """The axial, coronal or sagittal plane through a point, covering the whole CT.

    Parameters
    ----------
    ct : CTVolume
    kind : {'axial', 'coronal', 'sagittal'}
    cursor_lps_mm : (3,) array_like
        The plane passes through this point (the crosshair), LPS mm.
    pixel_mm : float, optional
        Default: the CT's smallest voxel spacing.

    Returns
    -------
    SlicePlane
        In-plane centre at the CT box centre, so the image does not move when the
        crosshair does.
    """
    if kind not in _ORTHO_AXES:
        raise InputError(f"must be one of {', '.join(ORTHOGONAL_KINDS)}, got {kind!r}", "kind")
    cursor = check_vector(cursor_lps_mm, 3, "cursor_lps_mm", unit="LPS mm")
    px = _pixel_mm(ct, pixel_mm)
    u, v = _ORTHO_AXES[kind]
    lo, hi = ct_bounds_lps(ct)
    centre = 0.5 * (lo + hi)
    n = np.cross(u, v)
    centre = centre + ((cursor - centre) @ n) * n            # through the cursor along the normal
    ext = hi - lo
    width = int(np.floor(abs(ext @ u) / px + 1e-6)) + 1
    height = int(np.floor(abs(ext @ v) / px + 1e-6)) + 1
    return SlicePlane(kind, centre, u.copy(), v.copy(), px, width, height)


def oblique_planes(entry_lps_mm, apex_lps_mm, cursor_lps_mm=None, *, half_width_mm: float = 80.0,
                   pixel_mm: float = 1.0, roll_deg: float = 0.0) -> tuple[SlicePlane, SlicePlane]:
    """The planes *along* and *across* an implant axis (module doc).

    Parameters
    ----------
    entry_lps_mm, apex_lps_mm : (3,) array_like
        The implant's axis, LPS mm.
    cursor_lps_mm : (3,) array_like, optional
        The across plane passes through this point projected onto the axis (clamped to
        the implant); default the implant's midpoint.
    half_width_mm : float
        Half the side of both (square) images.
    pixel_mm : float
    roll_deg : float
        Turns the along plane about the axis (right-handed, entry -> apex).

    Returns
    -------
    along, across : SlicePlane
        ``along`` is centred on the implant's midpoint; ``across`` on the axis point.
    """
    entry = check_vector(entry_lps_mm, 3, "entry_lps_mm", unit="LPS mm")
    apex = check_vector(apex_lps_mm, 3, "apex_lps_mm", unit="LPS mm")
    axis = apex - entry
    length = float(np.linalg.norm(axis))
    if length < 1e-6:
        raise InputError("entry and apex coincide", "entry_lps_mm/apex_lps_mm")
    a = axis / length
    ref = _Z if abs(a @ _Z) < 0.9 else _Y
    up = ref - (ref @ a) * a
    up /= np.linalg.norm(up)
    side = np.cross(a, up)
    r = np.deg2rad(float(roll_deg))
    up, side = np.cos(r) * up + np.sin(r) * side, -np.sin(r) * up + np.cos(r) * side
    px = float(pixel_mm)
    n = int(round(2.0 * half_width_mm / px)) + 1
    mid = 0.5 * (entry + apex)
    # along: columns along the axis (entry left), rows downwards = -up
    along = SlicePlane("oblique along", mid, a.copy(), -up, px, n, n)
    t = 0.5 * length if cursor_lps_mm is None else \
        float(np.clip((check_vector(cursor_lps_mm, 3, "cursor_lps_mm", unit="LPS mm") - entry) @ a, 0.0, length))
    # across: seen from the entry looking to the apex: normal = +a = u x v
    across = SlicePlane("oblique across", entry + t * a, side, -up, px, n, n)
    if not np.allclose(np.cross(across.u_axis, across.v_axis), a, atol=1e-9):
        across = SlicePlane("oblique across", entry + t * a, -side, -up, px, n, n)
    return along, across


def reslice(ct, plane: SlicePlane, outside_hu: float = -1000.0) -> np.ndarray:
    """Sample the CT on a plane.

    Parameters
    ----------
    ct : CTVolume
    plane : SlicePlane
    outside_hu : float
        Value of pixels outside the CT.

    Returns
    -------
    (H, W) float32 ndarray, HU
        Row ``r``, column ``c`` at :meth:`SlicePlane.pixel_to_lps` ``(c, r)``.
    """
    cols, rows = np.meshgrid(np.arange(plane.width_px), np.arange(plane.height_px))
    pts = plane.pixel_to_lps(cols, rows).reshape(-1, 3)
    return ct.sample_hu(pts, outside=outside_hu).reshape(plane.shape)


def window_image(hu: np.ndarray, preset: str | tuple[float, float] = "bone") -> np.ndarray:
    """Map HU to 0..255 with a window.

    Parameters
    ----------
    hu : (H, W) array, HU
    preset : str or (level, width)
        A name in :data:`WINDOW_PRESETS` or an explicit window (width > 0).

    Returns
    -------
    (H, W) uint8 ndarray
    """
    if isinstance(preset, str):
        if preset not in WINDOW_PRESETS:
            raise InputError(f"unknown window preset {preset!r}; known: {', '.join(WINDOW_PRESETS)}", "preset")
        level, width = WINDOW_PRESETS[preset]
    else:
        try:
            level, width = (float(x) for x in preset)
        except (TypeError, ValueError):
            raise InputError(f"must be a preset name or (level, width), got {preset!r}", "preset") from None
        if not width > 0:
            raise InputError(f"width must be > 0, got {width!r}", "preset")
    lo = level - 0.5 * width
    out = (np.asarray(hu, dtype=np.float32) - lo) * (255.0 / width)
    return np.clip(out, 0.0, 255.0).astype(np.uint8)
