"""Shot preprocessing: from a video frame to the float image and mask that registration uses.

:func:`preprocess_shot` takes a frame as the grabber delivers it (black surround, burnt-in
text, the monitor's flips) and the geometry of that frame's pixels, and returns a
:class:`PreprocessedShot`:

1. **Validate** the frame (:func:`~or_assist.video.preprocess.frame.as_gray_uint8`) and
   its size against the geometry (or ``settings.geometry_region_px``).
2. **Field of view** (:func:`~or_assist.video.preprocess.fov.detect_field_of_view`)
   unless given (in the delivered frame's pixels, e.g. from a
   :class:`~or_assist.video.preprocess.fov.FieldOfViewTracker`).
3. **Orientation**: the configured flips and quarter turn
   (:class:`~or_assist.video.preprocess.frame.Orientation`) undo the monitor's, so
   the pixels are in the physical orientation (a pose never holds a reflection). The
   input geometry's 2D parameters -- size, principal point, pixel spacing along u and
   v, distortion -- are read on the delivered frame and remapped with the pixels, so
   :func:`or_assist.core.geometry.project` with :attr:`PreprocessedShot.geometry`
   hits the same anatomy in :attr:`PreprocessedShot.image`. (With a centred principal
   point and square pixels a flip changes nothing but the pixels.)
4. **Crop** to the field's bounding box (``crop_to_field``) and **undistort** when the
   geometry has distortion (``undistort``; the returned geometry then has none).
5. **Masks**: burnt-in text (:func:`~or_assist.video.preprocess.masks.detect_text_mask`),
   metal and pins (:func:`~or_assist.video.preprocess.masks.metal_mask`), clipped
   white (direct exposure: no information), outside the (eroded) field.
6. **Polarity** (:func:`~or_assist.video.preprocess.polarity.detect_polarity`, or given)
   and **log conversion** to an attenuation-like image, larger where more attenuating,
   so it correlates positively with DRR line integrals:

   * ``video_response='log'`` (default): the C-arm already shows a windowed log
     image (``or_assist.render.display``), so the attenuation-like value is the
     bone-dark grey level inverted, ``(255 - g) / 255``;
   * ``video_response='linear'``: the video is proportional to transmitted intensity,
     so the value is ``-ln(g / g_air)`` with ``g_air`` the 99.5th percentile of the
     field (the normalised intensity).

   On simulated shots of the real CT (log display, as C-arms show it) the default
   correlates with the DRR line integrals at Pearson 0.97-0.99 without the C-arm's
   range compression and 0.89-0.97 with the simulator's default compression (80 % of
   the broad variation removed), ``'linear'`` about 0.07 lower. Registration that
   needs more should compare with a DRR passed through the same low-frequency
   suppression, or use gradient-based similarity.
7. **Contrast normalisation** (:func:`normalise`): zero mean, unit standard deviation
   inside the mask, zero outside.

:func:`pyramid` bins the result 2 x 2 per level, consistently with
:meth:`or_assist.core.geometry.CArmGeometry.downsampled`.

Speed (1920 x 1080 frame, 1054 x 1054 output, OpenCV on ``uint8``): about 15 ms of CPU
time with the field detected, about 11 ms with the field given (e.g. by a tracker);
the field detection alone about 3 ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from or_assist.core.geometry import CArmGeometry
from or_assist.core.validate import check_choice, is_integer
from or_assist.core.vocabulary import POLARITY_SETTINGS
from or_assist.errors import InputError
from or_assist.video.preprocess.fov import FieldOfView, detect_field_of_view
from or_assist.video.preprocess.frame import ROTATIONS_DEG, Orientation, as_gray_uint8, colourfulness
from or_assist.video.preprocess.masks import _metal, _text_u8
from or_assist.video.preprocess.polarity import _detect_polarity
from or_assist.video.preprocess.remap import (apply_distortion, frame_geometry, orient_fov, shift_fov,
                                              undistort_fov, undistort_maps)

__all__ = ["VIDEO_RESPONSES", "PreprocessSettings", "PreprocessedShot", "preprocess_shot"]

VIDEO_RESPONSES = ("log", "linear")
_MIN_VALID_FRACTION = 0.01


def _flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"must be True or False, got {value!r}", name)
    return bool(value)


@dataclass(frozen=True)
class PreprocessSettings:
    """How :func:`preprocess_shot` treats a frame.

    Attributes
    ----------
    polarity : {'auto', 'bone-dark', 'bone-bright'}
        ``'auto'`` detects it (:func:`detect_polarity`); undecided frames are taken as
        bone dark (the usual display) and reported with ``polarity_source='default'``.
    flip_horizontal, flip_vertical : bool
        Mirror the frame left-right / top-bottom (undo a mirrored monitor).
    rotate_deg : {0, 90, 180, 270}
        Then rotate it clockwise by this. Flips and rotation together must bring the
        frame to the physical orientation (the source frame's +x along +u).
    undistort : bool
        Resample to an undistorted image when the geometry has distortion.
    crop_to_field : bool
        Return only the field's bounding box (plus 2 px).
    geometry_region_px : (u, v, width, height) or None
        Where the geometry's image lies in the frame, when the geometry describes a
        detector image that the grabber shows scaled (uniformly to ``width`` x
        ``height``) at frame pixel ``(u, v)``. None: the geometry describes the frame
        itself and its size must match.
    mask_text, mask_metal, mask_saturated : bool
        Exclude burnt-in text, metal/pins, and clipped-white pixels from the mask.
    saturation_level : int
        Grey levels (of 255) at either end that count as clipped (default 6).
    pin_diameter_mm : float
        Guide-pin diameter for the line detector (default 3.2 mm).
    video_response : {'log', 'linear'}
        How grey levels relate to the X-ray signal (module docstring).
    normalise : bool
        Zero mean, unit standard deviation inside the mask.
    fov_erode_px : float
        Margin left out inside the field's edge (default 3 px).
    """

    polarity: str = "auto"
    flip_horizontal: bool = False
    flip_vertical: bool = False
    rotate_deg: int = 0
    undistort: bool = True
    crop_to_field: bool = True
    geometry_region_px: tuple[int, int, int, int] | None = None
    mask_text: bool = True
    mask_metal: bool = True
    mask_saturated: bool = True
    saturation_level: int = 6
    pin_diameter_mm: float = 3.2
    video_response: str = "log"
    normalise: bool = True
    fov_erode_px: float = 3.0

    def __post_init__(self):
        check_choice(self.polarity, POLARITY_SETTINGS, "polarity")
        if isinstance(self.rotate_deg, bool) or self.rotate_deg not in ROTATIONS_DEG:
            raise InputError(f"must be one of {ROTATIONS_DEG}, got {self.rotate_deg!r}", "rotate_deg")
        for name in ("flip_horizontal", "flip_vertical", "undistort", "crop_to_field", "mask_text",
                     "mask_metal", "mask_saturated", "normalise"):
            object.__setattr__(self, name, _flag(getattr(self, name), name))
        check_choice(self.video_response, VIDEO_RESPONSES, "video_response")
        lvl = self.saturation_level
        if not is_integer(lvl) or not 0 <= lvl <= 64:
            raise InputError(f"must be an integer from 0 to 64, got {lvl!r}", "saturation_level")
        for name, lo, hi in (("pin_diameter_mm", 0.1, 50.0), ("fov_erode_px", 0.0, 100.0)):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not (lo <= val <= hi):
                raise InputError(f"must be a number from {lo:g} to {hi:g}, got {val!r}", name)
        reg = self.geometry_region_px
        if reg is not None:
            try:
                reg = tuple(int(x) for x in reg)
            except (TypeError, ValueError):
                reg = None
            if reg is None or len(reg) != 4 or reg[0] < 0 or reg[1] < 0 or reg[2] < 1 or reg[3] < 1:
                raise InputError(f"must be None or (u, v, width, height) with u, v >= 0 and a positive "
                                 f"size, got {self.geometry_region_px!r}", "geometry_region_px")
            object.__setattr__(self, "geometry_region_px", reg)


@dataclass(frozen=True, eq=False)
class PreprocessedShot:
    """A frame ready for registration (see the module docstring).

    Attributes
    ----------
    image : (H, W) float32 ndarray
        Attenuation-like: larger where more attenuating; normalised inside ``mask``
        when ``settings.normalise`` (zero outside).
    mask : (H, W) bool ndarray
        Pixels a metric may use: inside the eroded field, not text, not metal or pins,
        not clipped.
    fov : FieldOfView
        The field in these pixels.
    text_mask, metal_mask : (H, W) bool ndarray
        Burnt-in overlays; metal, pins and saturated dense regions.
    polarity : {'bone-dark', 'bone-bright'}
        The polarity used.
    polarity_source : {'given', 'detected', 'default'}
        Where it came from ('default': detection was undecided, bone dark assumed).
    geometry : CArmGeometry
        Of these pixels (after orientation, crop and undistortion).
    orientation : Orientation
        The flip/rotation applied to the delivered frame.
    crop_px : (u, v, width, height)
        The crop in the oriented frame.
    undistorted : bool
        Whether the pixels were resampled to remove distortion.
    input_geometry : CArmGeometry
        The delivered frame's geometry (after ``geometry_region_px``).
    """

    image: np.ndarray
    mask: np.ndarray
    fov: FieldOfView
    text_mask: np.ndarray
    metal_mask: np.ndarray
    polarity: str
    polarity_source: str
    geometry: CArmGeometry
    orientation: Orientation
    crop_px: tuple[int, int, int, int]
    undistorted: bool
    input_geometry: CArmGeometry

    def to_frame_px(self, uv_px) -> np.ndarray:
        """Map (N, 2) pixels of :attr:`image` to the delivered frame's pixels."""
        p = np.asarray(uv_px, dtype=np.float64).reshape(-1, 2).copy()
        if self.undistorted:
            p = apply_distortion(p, self.geometry, self._distorted_geometry(), inverse=False)
        p += self.crop_px[:2]
        a, b = self.orientation.matrix, self.orientation.offset
        return (p - b) @ np.linalg.inv(a).T

    def from_frame_px(self, uv_px) -> np.ndarray:
        """Map (N, 2) pixels of the delivered frame to :attr:`image` pixels."""
        p = self.orientation.apply_points(uv_px) - self.crop_px[:2]
        if self.undistorted:
            p = apply_distortion(p, self.geometry, self._distorted_geometry(), inverse=True)
        return p

    def _distorted_geometry(self) -> CArmGeometry:
        u, v, w, h = self.crop_px
        return self.orientation.apply_geometry(self.input_geometry).cropped(u, v, w, h)


# --------------------------------------------------------------------------- the pipeline


def preprocess_shot(frame: np.ndarray, geometry: CArmGeometry,
                    settings: PreprocessSettings | None = None,
                    fov: FieldOfView | None = None) -> PreprocessedShot:
    """Turn a delivered video frame into registration input (module docstring).

    Parameters
    ----------
    frame : (H, W) or (H, W, 3) ndarray
        uint8 (or uint16 / float), grey or BGR, as the grabber delivers it.
    geometry : CArmGeometry
        Of the delivered frame's pixels: size ``(W, H)``, the principal point where
        the central ray pierces the frame as delivered, pixel spacing along its u and
        v, distortion on its normalised coordinates (see
        :meth:`Orientation.apply_geometry`). With ``settings.geometry_region_px`` it
        describes that region instead.
    settings : PreprocessSettings, optional
    fov : FieldOfView, optional
        The field in the delivered frame's pixels; detected when not given.

    Returns
    -------
    PreprocessedShot

    Raises
    ------
    InputError
        ``frame``: bad array, blank/saturated/non-fluoroscopic, no field, or no valid
        pixel left; ``geometry``: not a CArmGeometry or a size that does not match.
    """
    s = PreprocessSettings() if settings is None else settings
    if not isinstance(s, PreprocessSettings):
        raise InputError(f"expected PreprocessSettings, got {type(s).__name__}", "settings")
    gray = as_gray_uint8(frame, "frame")
    chroma = colourfulness(frame)
    if chroma > 25.0:
        raise InputError(f"is a colour image (median chroma {chroma:.0f} of 255), not fluoroscopy", "frame")
    if fov is not None and not isinstance(fov, FieldOfView):
        raise InputError(f"must be None or a FieldOfView, got {type(fov).__name__}", "fov")
    h, w = gray.shape
    geom_in = frame_geometry(geometry, (w, h), s.geometry_region_px)
    if fov is None:
        fov = detect_field_of_view(gray)

    orient = Orientation((w, h), s.flip_horizontal, s.flip_vertical, s.rotate_deg)
    g = orient.apply_image(gray)
    geom = orient.apply_geometry(geom_in)
    fov_o = orient_fov(fov, orient)
    oh, ow = g.shape
    if s.crop_to_field:
        cu, cv_, cw, ch = fov_o.crop_box((oh, ow), margin_px=2)
    else:
        cu, cv_, cw, ch = 0, 0, ow, oh
    geom = geom.cropped(cu, cv_, cw, ch)
    fov_c = shift_fov(fov_o, -cu, -cv_)
    undistorted = bool(s.undistort and geom.distortion is not None)
    if undistorted:
        mx, my = undistort_maps(geom)
        g = cv2.remap(g, mx + np.float32(cu), my + np.float32(cv_), cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        fov_c = undistort_fov(fov_c, geom)
        geom = geom.with_changes(distortion=None)
    else:
        g = np.ascontiguousarray(g[cv_:cv_ + ch, cu:cu + cw])

    field = fov_c.mask_u8(g.shape, erode_px=s.fov_erode_px)
    inner = fov_c.mask_u8(g.shape, erode_px=8.0)
    if s.polarity == "auto":
        pol = _detect_polarity(g, fov_c, inner)
        source = "detected" if pol != "unknown" else "default"
        pol = pol if pol != "unknown" else "bone-dark"
    else:
        pol, source = s.polarity, "given"
    dense = cv2.bitwise_not(g) if pol == "bone-dark" else g    # uint8, 255 = most attenuating
    if s.mask_text:
        text = _text_u8(g, fov_c, masks={-1.5: fov_c.mask_u8(g.shape, erode_px=-1.5), 8.0: inner})
    else:
        text = np.zeros(g.shape, np.uint8)
    if s.mask_metal:
        pin_px = s.pin_diameter_mm * geom.magnification / min(geom.pixel_spacing_mm)
        metal = _metal(dense, fov_c, s.saturation_level, pin_px, 40.0, 2, inside=field)
    else:
        metal = np.zeros(g.shape, np.uint8)
    bad = cv2.bitwise_or(text, metal)
    if s.mask_saturated:                             # clipped white: direct exposure, no information
        _, clipped = cv2.threshold(dense, s.saturation_level, 1, cv2.THRESH_BINARY_INV)
        bad = cv2.bitwise_or(bad, clipped)
    mask = cv2.subtract(field, bad)                  # 0/1: in the field and not excluded
    n_valid = cv2.countNonZero(mask)
    if n_valid < _MIN_VALID_FRACTION * mask.size:
        raise InputError("leaves no usable pixels in its field (all text, metal or saturated)", "frame")
    lut = _response_lut(s.video_response, dense, mask)
    if s.normalise:
        hist = cv2.calcHist([dense], [0], mask, [256], [0, 256]).ravel().astype(np.float64)
        mean = float(hist @ lut) / n_valid
        std = math.sqrt(max(float(hist @ (lut.astype(np.float64) - mean) ** 2) / n_valid, 0.0))
        if std <= 1e-9:
            raise InputError("is uniform inside its field: no image to register", "frame")
        lut = ((lut - mean) / std).astype(np.float32)
    image = cv2.LUT(dense, lut)
    image = cv2.bitwise_and(image, image, mask=mask)   # zero outside the mask
    text, metal, mask = text.view(bool), metal.view(bool), mask.view(bool)
    return PreprocessedShot(image=image, mask=mask, fov=fov_c, text_mask=text, metal_mask=metal,
                            polarity=pol, polarity_source=source, geometry=geom, orientation=orient,
                            crop_px=(cu, cv_, cw, ch), undistorted=undistorted, input_geometry=geom_in)


def _response_lut(response: str, dense: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """256-entry float32 table: dense grey level (255 = most attenuating) -> attenuation-like."""
    levels = np.arange(256, dtype=np.float64)
    if response == "log":
        return (levels / 255.0).astype(np.float32)
    g = 255.0 - levels                                       # the bone-dark grey level
    hist = cv2.calcHist([dense], [0], mask, [256], [0, 256]).ravel()
    cdf = np.cumsum(hist) / max(float(hist.sum()), 1.0)
    air = 255.0 - float(np.searchsorted(cdf, 0.005))         # 99.5th percentile of the grey level
    return (-np.log((g + 0.5) / (max(air, 1.0) + 0.5))).astype(np.float32)
