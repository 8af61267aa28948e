"""What a calibration found: per-image results and the geometry with its fit quality."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose

__all__ = ["ImageCalibration", "CalibrationResult"]


@dataclass(frozen=True, eq=False)
class ImageCalibration:
    """One image's part in a calibration.

    Attributes
    ----------
    name : str
    status : str
        ``"ok"``, or why the image was not used.
    n_detected, n_identified, n_used : int
        Blobs found, beads identified, beads in the final fit.
    rms_px, max_px : float
        Reprojection error of the used beads (NaN when unused).
    pose : Pose or None
        ``T_source_from_phantom`` (phantom frame as in
        :mod:`or_assist.calibration.phantom`).
    tilt_deg : float
        Angle between the plate's normal and the central ray.
    plate_distance_mm : float
        Source to the phantom's ``z = 0`` plane along its normal.
    on_detector : bool
        Counted as lying on the detector cover (used for the SID).
    image_px : (M, 2) float64
        Used bead centroids.
    phantom_mm : (M, 3) float64
        Their positions in the phantom frame.
    residuals_px : (M, 2) float64
        Projected minus detected.
    """

    name: str
    status: str
    n_detected: int = 0
    n_identified: int = 0
    n_used: int = 0
    rms_px: float = math.nan
    max_px: float = math.nan
    pose: Pose | None = None
    tilt_deg: float = math.nan
    plate_distance_mm: float = math.nan
    on_detector: bool = False
    image_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    phantom_mm: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    residuals_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


@dataclass(frozen=True, eq=False)
class CalibrationResult:
    """A calibration's geometry and how well it fits.

    Attributes
    ----------
    geometry : CArmGeometry
        In the pixels of the (cropped) images.
    reprojection_error_px : (rms, max)
        Over all used beads of all images.
    sid_mm : float
    pixel_spacing_mm : (px, py)
        mm of detector per image pixel.
    principal_point_px : (u0, v0)
    focal_std_px : (float, float)
        Standard deviation of ``fx``, ``fy`` (OpenCV's estimate from the residuals).
    distortion_model : str
        The model kept (``none``, ``radial`` or ``full``).
    max_distortion_px : float
        Largest shift the distortion causes at a used bead.
    n_beads : int
        Beads in the final fit.
    images : tuple of ImageCalibration
    roi : (x, y, w, h) or None
    field_box_px : (x, y, w, h)
        The bright field in the first used image (image pixels).
    warnings : tuple of str
        Doubts about the result (e.g. a reprojection error above 0.3 px rms).
    """

    geometry: CArmGeometry
    reprojection_error_px: tuple[float, float]
    sid_mm: float
    pixel_spacing_mm: tuple[float, float]
    principal_point_px: tuple[float, float]
    focal_std_px: tuple[float, float]
    distortion_model: str
    max_distortion_px: float
    n_beads: int
    images: tuple[ImageCalibration, ...]
    roi: tuple[int, int, int, int] | None
    field_box_px: tuple[int, int, int, int]
    warnings: tuple[str, ...] = ()

    @property
    def per_image_residuals_px(self) -> list[np.ndarray]:
        """(M, 2) residuals of each image (empty for unused images)."""
        return [im.residuals_px for im in self.images]
