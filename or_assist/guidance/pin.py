"""Guide-pin detection in one fluoroscopy shot.

A guide pin is a straight, dark (radiopaque), high-contrast line segment about 3.2 mm
wide. :func:`detect_pin` finds it in an attenuation-like image (higher = more
attenuating; :func:`attenuation_from_frame` makes one from a video frame):

1. **Working scale**: the image is binned so the pin is about
   :attr:`PinDetectorSettings.work_width_px` pixels wide (its expected width follows
   from the geometry and the prior's depth); pixels outside the field, under burnt-in
   text or otherwise excluded are filled from their valid neighbourhood.
2. **Two-sided ridge**: at each pixel, the Hessian's most negative eigenvalue gives
   the line's normal; the ridge response is the pixel's value minus the *larger* of
   the two values one pin width to either side. A pin is darker than both sides;
   the edges of a wide implant or of bone are darker than one side only, so they fail.
3. **Candidates**: a weighted Hough transform of the ridge pixels, restricted to the
   prior's band (planned axis projection, angle and position tolerance) when a prior
   is given; a few peaks become candidate lines.
4. **Verification**: along each candidate the cross-profile is sampled at full
   resolution; the longest run of two-sided contrast is the segment. Wide bands
   (placed implants), short or faint runs are rejected, and so is a refined line that no
   pin near the plan could make: with the planned axis known in 3-D
   (:meth:`PinPrior.min_angle_deg`), one whose least 3-D angle to it exceeds
   :attr:`PinDetectorSettings.max_angle_3d_deg` (a bone edge the refinement pulled
   away from the candidate's direction). The centre of each
   cross-profile is found to sub-pixel precision and a line is fitted to the centres
   (robust total least squares).
5. **Ends**: from where the segment last shows the pin's two-sided signature the detector
   walks along the line, past anything that crosses the pin (a cortex band breaks the
   signature, not the pin's darkness) and short excluded patches, for as long as the pin's
   metal continues (centre as dark as its shaft: ``_pin_ends.walk_end``); the tip is the end lying towards
   the planned apex (or, without a prior, the end away from the field's border). The seen
   end is moved back by what the end's shape adds (a flat end's disk reaches
   ``r sqrt(1 - f^2)`` beyond the axis at foreshortening ``f``; a cone's half-value point
   lies half its projected length short). When the pin vanishes into something as dark
   as itself, or is seen to its end only along one free edge (lying on a placed
   implant's edge), the tip is *occluded*; at the field's border it is *at the border*; either
   way it was not seen (:attr:`PinDetection.tip_seen`) and ``tip_px`` is only where the
   pin was last seen.

The choice among candidates combines the evidence (contrast, length, straightness)
with the prior (angle to the planned axis, distance of the tip from it). Confidence is
in 0-1; below :attr:`PinDetectorSettings.min_confidence` nothing is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from or_assist.core.geometry import CArmGeometry, project_with_depth
from or_assist.core.pose import Pose
from or_assist.core.instruments import DEFAULT_PIN_DIAMETER_MM
from or_assist.core.validate import check_choice, check_number, check_positive
from or_assist.core.vocabulary import POLARITIES
from or_assist.errors import InputError
from or_assist.guidance import _pin_ends as ends, _pin_profile as prof

__all__ = ["PinDetectorSettings", "PinPrior", "PinDetection", "attenuation_from_frame", "detect_pin"]


@dataclass(frozen=True)
class PinDetectorSettings:
    """Parameters of :func:`detect_pin` (defaults tuned on simulated shots of a real CT).

    Attributes
    ----------
    pin_diameter_mm : float
        Wire diameter (default 3.2 mm).
    work_width_px : float
        Expected pin width at the working scale, pixels (default 5).
    angle_tolerance_deg : float
        Largest angle between the pin and the planned axis in the image that the prior
        admits (default 20; widened for foreshortened axes).
    offset_tolerance_mm : float
        Largest distance of the pin from the planned axis segment, mm at its depth
        (default 25).
    min_length_mm : float
        Shortest visible segment accepted, mm at the pin's depth (default 8).
    min_contrast : float
        Least two-sided contrast of the pin as a share of the field's intensity range
        (1st-99th percentile; default 0.12).
    max_width_ratio : float
        Widest band accepted, as a multiple of the expected pin width (default 1.8);
        placed implants are wider.
    min_confidence : float
        Detections below this confidence are not reported (default 0.6: on the calibration
        seeds, bone edges that pass verification reach at most 0.56, pins 0.63 and more;
        see ``_pin_ends``).
    max_angle_3d_deg : float
        Largest 3-D angle between the pin and the planned axis the prior admits: a line
        whose every 3-D reading is further off (with a prior that knows the axis in 3-D)
        or, otherwise, whose image angle is more than ``angle_tolerance_deg`` + 5 deg off
        in a view that does not see the axis end on, is no candidate (default 25).
    tip_cone_mm : float
        Axial length of the pin's pointed tip (0, the default: a flat end); the seen end
        is moved back to the tip by what the end's shape adds (module doc, step 5).
    """

    pin_diameter_mm: float = DEFAULT_PIN_DIAMETER_MM
    work_width_px: float = 5.0
    angle_tolerance_deg: float = 20.0
    offset_tolerance_mm: float = 25.0
    min_length_mm: float = 8.0
    min_contrast: float = 0.12
    max_width_ratio: float = 1.8
    min_confidence: float = 0.6
    max_angle_3d_deg: float = 25.0
    tip_cone_mm: float = 0.0

    def __post_init__(self):
        for name in ("pin_diameter_mm", "work_width_px", "angle_tolerance_deg", "offset_tolerance_mm",
                     "min_length_mm", "min_contrast", "max_width_ratio", "max_angle_3d_deg"):
            check_positive(getattr(self, name), name)
        check_number(self.min_confidence, "min_confidence", 0.0, 1.0, expected="a number from 0 to 1")
        check_positive(self.tip_cone_mm, "tip_cone_mm", allow_zero=True)


@dataclass(frozen=True, eq=False)
class PinPrior:
    """Where the active implant's pin is expected: its planned axis in the image.

    Attributes
    ----------
    entry_px, apex_px : (2,) float64
        Projected planned entry and apex (u, v) pixels.
    entry_depth_mm, apex_depth_mm : float
        Their source-frame depths.
    foreshortening : float
        Projected axis length over the length it would have perpendicular to the beam
        (1 = side on, 0 = end on).
    axis_source : (3,) float64, optional
        Unit planned axis (entry -> apex) in the source frame; with ``camera``, lets the
        detector reject lines no pin near the plan could make (module doc, step 4).
    camera : (fx, fy, u0, v0), optional
        Focal lengths and principal point in pixels.
    """

    entry_px: np.ndarray
    apex_px: np.ndarray
    entry_depth_mm: float
    apex_depth_mm: float
    foreshortening: float
    axis_source: np.ndarray | None = None
    camera: tuple | None = None

    @classmethod
    def from_implant(cls, implant, pose: Pose, geometry: CArmGeometry) -> "PinPrior":
        """The prior of a planned :class:`~or_assist.core.plan.Implant` in a registered shot."""
        ends = np.stack([implant.entry_lps_mm, implant.apex_lps_mm])
        uv, depth = project_with_depth(ends, pose, geometry)
        if not np.all(np.isfinite(uv)) or np.any(depth <= 0):
            raise InputError(f"implant {implant.id!r} lies behind the X-ray source in this pose", "pose")
        mean_depth = float(depth.mean())
        px_per_mm = geometry.sid_mm / (geometry.pixel_spacing_mm[0] * mean_depth)
        side_on = implant.length_mm * px_per_mm
        fs = float(np.clip(np.linalg.norm(uv[1] - uv[0]) / side_on, 0.0, 1.0))
        src = pose.apply(ends)
        axis = (src[1] - src[0]) / np.linalg.norm(src[1] - src[0])
        sx, sy = geometry.pixel_spacing_mm
        cam = (geometry.sid_mm / sx, geometry.sid_mm / sy, *map(float, geometry.principal_point_px))
        return cls(uv[0], uv[1], float(depth[0]), float(depth[1]), fs, axis, cam)

    def min_angle_deg(self, p_px, q_px) -> float | None:
        """The least 3-D angle to the planned axis of any line that projects onto the
        image line through ``p_px`` and ``q_px`` (None without ``axis_source``/``camera``).

        The line's 3-D direction lies in the plane through the source and the image line;
        the least angle is the planned axis's angle to that plane.
        """
        if self.axis_source is None or self.camera is None:
            return None
        fx, fy, u0, v0 = self.camera
        r1 = np.array([(p_px[0] - u0) / fx, (p_px[1] - v0) / fy, 1.0])
        r2 = np.array([(q_px[0] - u0) / fx, (q_px[1] - v0) / fy, 1.0])
        n = np.cross(r1, r2)
        nn = float(np.linalg.norm(n))
        if nn < 1e-12:
            return None
        return math.degrees(math.asin(min(1.0, abs(float(n @ self.axis_source)) / nn)))

    @property
    def depth_mm(self) -> float:
        """Mean depth of the planned axis."""
        return 0.5 * (self.entry_depth_mm + self.apex_depth_mm)


@dataclass(frozen=True, eq=False)
class PinDetection:
    """A detected guide pin in image pixels.

    Attributes
    ----------
    tip_px : (2,) float64
        The pin's tip (the end inside the bone), sub-pixel (u, v).
    back_px : (2,) float64
        The other visible end of the segment (often the field's border).
    direction_px : (2,) float64
        Unit vector from ``back_px`` towards ``tip_px``.
    width_px : float
        Measured width of the dark band (about the pin's diameter in pixels).
    contrast : float
        Two-sided contrast as a share of the field's intensity range.
    line_rms_px : float
        RMS distance of the cross-profile centres from the fitted line.
    confidence : float
        0-1 (contrast, length, straightness, width).
    tip_occluded : bool
        The pin disappears into something as dark as itself (a placed implant, a sleeve,
        a dense cortex) or its end is too faint to tell: ``tip_px`` is where it was last
        seen and the tip may lie further along.
    tip_at_border : bool
        The tip end touches the field's border or an excluded region: the real tip may
        lie outside the image.
    candidates : int
        How many line candidates were examined.
    tip_ambiguous : bool
        The planned axis is seen nearly end on and the pin's perspective (the end nearer
        the source is wider) did not tell which end is the tip.
    """

    tip_px: np.ndarray
    back_px: np.ndarray
    direction_px: np.ndarray
    width_px: float
    contrast: float
    line_rms_px: float
    confidence: float
    tip_occluded: bool = False
    tip_at_border: bool = False
    candidates: int = field(default=0)
    tip_ambiguous: bool = False

    @property
    def tip_seen(self) -> bool:
        """Whether the tip itself was seen: neither hidden in something as dark as the pin
        nor at the field's border (otherwise ``tip_px`` is only where the pin was last seen)."""
        return not (self.tip_occluded or self.tip_at_border or self.tip_ambiguous)

    @property
    def tip_problem(self) -> str | None:
        """Why the tip was not seen, in words for the OR (None when it was)."""
        if self.tip_at_border:
            return "at the edge of the image"
        if self.tip_occluded:
            return "hidden in dense material"
        if self.tip_ambiguous:
            return "pin seen end on: which end is the tip is not clear"
        return None

    @property
    def length_px(self) -> float:
        """Visible length from back to tip, pixels."""
        return float(np.linalg.norm(self.tip_px - self.back_px))

    def to_dict(self) -> dict:
        """JSON-ready fields (pixels)."""
        return {"tip_px": self.tip_px.tolist(), "back_px": self.back_px.tolist(),
                "direction_px": self.direction_px.tolist(), "width_px": self.width_px,
                "contrast": self.contrast, "line_rms_px": self.line_rms_px, "confidence": self.confidence,
                "tip_occluded": self.tip_occluded, "tip_at_border": self.tip_at_border,
                "tip_ambiguous": self.tip_ambiguous}


def attenuation_from_frame(frame: np.ndarray, polarity: str = "bone-dark") -> np.ndarray:
    """A video frame as an attenuation-like float32 image (higher = denser), 0-1.

    Parameters
    ----------
    frame : (H, W) or (H, W, 3) uint8 ndarray
    polarity : {'bone-dark', 'bone-bright'}
        How the frame shows bone and metal.
    """
    if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or min(frame.shape[:2]) < 16:
        raise InputError(f"must be an (H, W) or (H, W, 3) image of at least 16 x 16 pixels, got "
                         f"{getattr(frame, 'shape', type(frame).__name__)}", "frame")
    check_choice(polarity, POLARITIES, "polarity")
    img = frame if frame.ndim == 2 else cv2.cvtColor(frame[:, :, :3], cv2.COLOR_BGR2GRAY)
    scale = 65535.0 if img.dtype == np.uint16 else (255.0 if img.dtype == np.uint8 or img.max() > 1.0 else 1.0)
    f = img.astype(np.float32) / np.float32(scale)
    return (1.0 - f) if polarity == "bone-dark" else f


def detect_pin(image: np.ndarray, geometry: CArmGeometry, *, valid_mask: np.ndarray | None = None,
               prior: PinPrior | None = None, settings: PinDetectorSettings | None = None) -> PinDetection | None:
    """Find the guide pin in one shot (module doc).

    Parameters
    ----------
    image : (H, W) float ndarray
        Attenuation-like (higher = more attenuating; metal highest), any offset and gain.
    geometry : CArmGeometry
        Of ``image``'s pixels (size must match).
    valid_mask : (H, W) bool ndarray, optional
        Pixels to use: inside the field, not burnt-in text. Default: all.
    prior : PinPrior, optional
        The active implant's planned axis: restricts and ranks the candidates.
    settings : PinDetectorSettings, optional

    Returns
    -------
    PinDetection or None
        None when no pin is found with at least ``settings.min_confidence``.
    """
    settings = settings or PinDetectorSettings()
    img = _check_image(image, geometry)
    valid = _check_mask(valid_mask, img.shape)
    if valid.sum() < 0.01 * valid.size:
        raise InputError("fewer than 1 % of the pixels are valid (inside the field, not text)", "valid_mask")
    depth = prior.depth_mm if prior is not None else geometry.source_to_isocenter_mm
    width_px = settings.pin_diameter_mm * geometry.sid_mm / (depth * geometry.pixel_spacing_mm[0])
    mm_per_px = depth * geometry.pixel_spacing_mm[0] / geometry.sid_mm
    lo, hi = np.percentile(img[valid], [1.0, 99.0])
    rng = float(hi - lo) if hi > lo else 1.0
    norm = ((img - lo) / rng).astype(np.float32)
    filled = prof.fill_invalid(norm, valid, width_px)
    factor = max(1, int(round(width_px / settings.work_width_px)))
    work = prof.bin_image(filled, factor)
    work_valid = prof.bin_mask(valid, factor)
    w_work = width_px / factor
    ridge = prof.two_sided_ridge(work, w_work)
    inner = cv2.erode(work_valid.astype(np.uint8), np.ones((3, 3), np.uint8),
                      iterations=max(1, int(round(w_work)))).astype(bool)
    ridge[~inner] = 0.0
    band = None
    if prior is not None:
        band = prof.prior_band(prior, factor, settings.offset_tolerance_mm / mm_per_px / factor, work.shape,
                               settings.angle_tolerance_deg)
        ridge[~band] = 0.0
    lines = prof.hough_candidates(ridge, settings.min_contrast * 0.5, prior, factor, settings.angle_tolerance_deg)
    best, best_score = None, -np.inf
    for rho_theta in lines:
        seg = prof.verify_line(filled, valid, rho_theta, factor, width_px, settings)
        if seg is None or not _admissible(seg, prior, settings):
            continue
        score = seg["quality"] * _prior_weight(seg, prior, mm_per_px, settings)
        if score > best_score:
            best, best_score = seg, score
    if best is None:
        return None
    det = ends.finish_detection(filled, valid, best, width_px, prior, settings, mm_per_px, len(lines))
    if det is None or det["confidence"] < settings.min_confidence:
        return None
    return PinDetection(candidates=len(lines), **det)


def _admissible(seg: dict, prior: PinPrior | None, settings: PinDetectorSettings) -> bool:
    """Whether the refined line could be the planned implant's pin at all (its angle)."""
    if prior is None:
        return True
    least = prior.min_angle_deg(*seg["ends"])
    if least is not None:
        return least <= settings.max_angle_3d_deg
    axis = prior.apex_px - prior.entry_px
    n = float(np.linalg.norm(axis))
    if n < 1e-6 or prior.foreshortening < 0.3:
        return True
    cosang = abs(float(np.dot(seg["direction"], axis / n)))
    return math.degrees(math.acos(min(1.0, cosang))) <= settings.angle_tolerance_deg + 5.0


def _prior_weight(seg: dict, prior: PinPrior | None, mm_per_px: float, settings: PinDetectorSettings) -> float:
    if prior is None:
        return 1.0
    axis = prior.apex_px - prior.entry_px
    n = np.linalg.norm(axis)
    weight = 1.0
    if n > 1e-6 and prior.foreshortening > 0.3:
        cosang = abs(float(np.dot(seg["direction"], axis / n)))
        ang = math.degrees(math.acos(min(1.0, cosang)))
        weight *= math.exp(-0.5 * (ang / (0.5 * settings.angle_tolerance_deg)) ** 2)
    # distance of the segment's ends from the planned axis segment, mm
    d = min(prof.point_segment_distance(p, prior.entry_px, prior.apex_px) for p in seg["ends"]) * mm_per_px
    weight *= math.exp(-0.5 * (d / (0.5 * settings.offset_tolerance_mm)) ** 2)
    return weight


def _check_image(image, geometry) -> np.ndarray:
    if not isinstance(geometry, CArmGeometry):
        raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")
    if not isinstance(image, np.ndarray) or image.ndim != 2:
        raise InputError(f"must be a 2-D array (H, W), got {getattr(image, 'shape', type(image).__name__)}", "image")
    if image.shape[::-1] != tuple(geometry.image_size_px):
        raise InputError(f"size {image.shape[1]} x {image.shape[0]} does not match the geometry's image_size "
                         f"{geometry.image_size_px[0]} x {geometry.image_size_px[1]}", "image")
    img = image.astype(np.float32, copy=False)
    if not np.all(np.isfinite(img)):
        raise InputError("contains NaN or inf", "image")
    return img


def _check_mask(mask, shape) -> np.ndarray:
    if mask is None:
        return np.ones(shape, bool)
    m = np.asarray(mask)
    if m.shape != shape:
        raise InputError(f"must have the image's shape {shape}, got {m.shape}", "valid_mask")
    return m.astype(bool)
