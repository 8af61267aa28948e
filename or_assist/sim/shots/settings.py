"""The settings of a simulated shot: physics, detector and video (:class:`ShotSettings`).

The imaging chain they drive is described in :mod:`or_assist.sim.shots.simulate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from or_assist.core.validate import check_choice, check_integer, check_number, check_vector
from or_assist.errors import InputError
from or_assist.render.display import DisplaySettings

__all__ = ["COLLIMATIONS", "DEFAULT_TEXT_TOP", "DEFAULT_TEXT_BOTTOM", "ShotSettings"]

COLLIMATIONS = ("circle", "square", None)
#: Burnt-in text of a default shot: a fake patient field and a date (top left) ...
DEFAULT_TEXT_TOP = ("DEMO^PATIENT  ID 0000000", "2024-05-14  10:32:07")
#: ... and exposure values (bottom left).
DEFAULT_TEXT_BOTTOM = ("96 kV  2.6 mA  FL", "SIJF DEMO")


def _int_pair(value, name: str, lo: int) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        a, b = value
    except (TypeError, ValueError):
        raise InputError(f"must be None or two integers, got {value!r}", name) from None
    return (check_integer(a, name, lo, 1 << 16), check_integer(b, name, lo, 1 << 16))


def _lines(value, name: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or \
            not all(isinstance(s, str) and s.isprintable() for s in value):
        raise InputError(f"must be a list of printable strings (one per line), got {value!r}", name)
    return tuple(value)


@dataclass(frozen=True)
class ShotSettings:
    """Physical and video parameters of a simulated shot (module doc for the chain).

    Attributes
    ----------
    i0_photons_per_px : float
        Dose: photons per detector pixel with nothing in the beam (> 0); noise variance
        in transmitted units is ``T / i0``. Default 1e5 (about 100 photons behind a
        lateral pelvis).
    energy_kev : float
        Effective photon energy for HU -> attenuation and the metals (default 60 keV).
    focal_spot_mm : float
        Nominal focal-spot size (FWHM, mm; default 0.6). Blur at the detector: FWHM
        ``focal_spot_mm * (M - 1)``, ``M`` the magnification at the isocentre.
    detector_blur_px : float
        Standard deviation of the detector (scintillator / intensifier) blur in detector
        pixels, applied after the photon noise (default 0.7).
    scatter_fraction : float
        Share of the detected signal that is scatter and veiling glare, 0-0.9 (default 0.25).
    scatter_kernel_mm : float
        Standard deviation of the glare kernel at the detector plane, mm (default 30).
    range_compression : float
        The C-arm's dynamic-range compression: share of the broad-scale variation of
        the log image removed, 0-1 (default 0.8; 0 = plain log image).
    range_compression_kernel_mm : float
        Standard deviation of its low-pass at the detector plane, mm (default 12).
    supersample : int
        Rays per pixel along each axis (1-4; default 2); > 1 avoids an inverse crime.
    step_fraction : float
        Ray step as a fraction of the smallest voxel spacing (default 0.25; registration
        uses 0.5).
    collimation : {'circle', 'square', None}
        Field shape, centred on the detector image; None = the whole detector.
    collimation_radius_fraction : float
        Radius (circle) or half side (square) as a fraction of half the detector's
        smaller side (0.1-1; default 0.97).
    collimation_offset_fraction : (du, dv)
        Shift of the field centre in units of half the detector's smaller side (each
        -0.5 to 0.5; default (0, 0)).
    collimation_leaf : (distance_fraction, angle_deg) or None
        A partial field: one collimator leaf covers the field beyond ``distance_fraction``
        (-1 to 1) of its radius along the image direction ``angle_deg`` (0 = +u, 90 = +v)
        (:func:`or_assist.sim.shots.chain.field_mask`). Default None.
    vignetting : float
        Intensifier light fall-off, 0-1 (default 0): the signal at the input screen's edge
        is ``1 - vignetting`` of the centre's, applied before the photon noise
        (:func:`or_assist.sim.shots.processing.vignetting_gain`); bone-dark displays show
        the edge darker.
    s_distortion_px : float
        Amplitude (detector pixels, 0-50; default 0) of the intensifier's S-distortion,
        a warp of the detector image that the shot's geometry does **not** model
        (:func:`or_assist.sim.shots.processing.s_distortion`).
    unsharp_radius_px, unsharp_gain : float
        Edge enhancement of the displayed image (radius > 0 detector pixels, default 3;
        gain 0-5, default 0 = off; :func:`or_assist.sim.shots.processing.unsharp_mask`).
    text_top, text_bottom : sequence of str
        Burnt-in lines at the frame's top-left and bottom-left corners (white).
    metering_fraction : float
        The automatic window is taken from the central part of the field, this fraction
        of its radius (0.1-1; default 0.6), like a C-arm's brightness metering field.
    metering_max_transmission : float
        Pixels whose primary transmission exceeds this (0.01-1) are left out of the
        automatic window, as brightness control ignores direct radiation (default 1:
        none left out).
    video_bits : int
        Grey levels of the video signal, 1-8 bits (default 8); the frame is uint8.
    invert : bool
        Invert polarity inside the field (bone white); surround stays black, text white.
    frame_size_px : (width, height) or None
        The video frame, e.g. (1920, 1080); None = the detector image itself.
    frame_scale : float or None
        Frame pixels per detector pixel; None = as large as fits the frame (without a
        frame size: 1, the frame is the scaled image).
    frame_offset_px : (x, y) or None
        Frame pixel of the image's top-left corner; None = centred.
    ii_distortion : (5,) sequence or None
        Image-intensifier distortion, OpenCV ``[k1, k2, p1, p2, k3]``, put into the
        shot's geometry (the geometry passed in must then have none).
    display : DisplaySettings or None
        The display curve; None = log, automatic window from the 1st to the 99th
        percentile of the metering field without metal, gamma 1.
    seed : int
        Seed of the photon noise (>= 0).
    """

    i0_photons_per_px: float = 100000.0
    energy_kev: float = 60.0
    focal_spot_mm: float = 0.6
    detector_blur_px: float = 0.7
    scatter_fraction: float = 0.25
    scatter_kernel_mm: float = 30.0
    range_compression: float = 0.8
    range_compression_kernel_mm: float = 12.0
    supersample: int = 2
    step_fraction: float = 0.25
    collimation: str | None = "circle"
    collimation_radius_fraction: float = 0.97
    collimation_offset_fraction: tuple[float, float] = (0.0, 0.0)
    collimation_leaf: tuple[float, float] | None = None
    vignetting: float = 0.0
    s_distortion_px: float = 0.0
    unsharp_radius_px: float = 3.0
    unsharp_gain: float = 0.0
    text_top: Sequence[str] = DEFAULT_TEXT_TOP
    text_bottom: Sequence[str] = DEFAULT_TEXT_BOTTOM
    metering_fraction: float = 0.6
    metering_max_transmission: float = 1.0
    video_bits: int = 8
    invert: bool = False
    frame_size_px: tuple[int, int] | None = None
    frame_scale: float | None = None
    frame_offset_px: tuple[int, int] | None = None
    ii_distortion: Sequence[float] | None = None
    display: DisplaySettings | None = None
    seed: int = 0

    def __post_init__(self):
        s = object.__setattr__
        s(self, "i0_photons_per_px", check_number(self.i0_photons_per_px, "i0_photons_per_px", 0.0, 1e12, lo_open=True))
        s(self, "energy_kev", check_number(self.energy_kev, "energy_kev", 10.0, 200.0))
        s(self, "focal_spot_mm", check_number(self.focal_spot_mm, "focal_spot_mm", 0.0, 5.0))
        s(self, "detector_blur_px", check_number(self.detector_blur_px, "detector_blur_px", 0.0, 50.0))
        s(self, "scatter_fraction", check_number(self.scatter_fraction, "scatter_fraction", 0.0, 0.9))
        s(self, "scatter_kernel_mm", check_number(self.scatter_kernel_mm, "scatter_kernel_mm", 0.0, 1000.0, lo_open=True))
        s(self, "range_compression", check_number(self.range_compression, "range_compression", 0.0, 1.0))
        s(self, "range_compression_kernel_mm",
          check_number(self.range_compression_kernel_mm, "range_compression_kernel_mm", 0.0, 1000.0, lo_open=True))
        s(self, "supersample", check_integer(self.supersample, "supersample", 1, 4))
        s(self, "step_fraction", check_number(self.step_fraction, "step_fraction", 0.01, 2.0))
        check_choice(self.collimation, COLLIMATIONS, "collimation")
        s(self, "collimation_radius_fraction",
          check_number(self.collimation_radius_fraction, "collimation_radius_fraction", 0.1, 1.0))
        off = check_vector(self.collimation_offset_fraction, 2, "collimation_offset_fraction")
        if np.any(np.abs(off) > 0.5):
            raise InputError(f"must be two numbers from -0.5 to 0.5, got {off.tolist()}", "collimation_offset_fraction")
        s(self, "collimation_offset_fraction", (float(off[0]), float(off[1])))
        if self.collimation_leaf is not None:
            leaf = check_vector(self.collimation_leaf, 2, "collimation_leaf",
                                expected="None or (distance_fraction, angle_deg)")
            s(self, "collimation_leaf", (check_number(leaf[0], "collimation_leaf", -1.0, 1.0), float(leaf[1])))
        s(self, "vignetting", check_number(self.vignetting, "vignetting", 0.0, 1.0))
        s(self, "s_distortion_px", check_number(self.s_distortion_px, "s_distortion_px", 0.0, 50.0))
        s(self, "unsharp_radius_px", check_number(self.unsharp_radius_px, "unsharp_radius_px", 0.0, 100.0, lo_open=True))
        s(self, "unsharp_gain", check_number(self.unsharp_gain, "unsharp_gain", 0.0, 5.0))
        s(self, "text_top", _lines(self.text_top, "text_top"))
        s(self, "text_bottom", _lines(self.text_bottom, "text_bottom"))
        s(self, "metering_fraction", check_number(self.metering_fraction, "metering_fraction", 0.1, 1.0))
        s(self, "metering_max_transmission",
          check_number(self.metering_max_transmission, "metering_max_transmission", 0.01, 1.0))
        s(self, "video_bits", check_integer(self.video_bits, "video_bits", 1, 8))
        if not isinstance(self.invert, (bool, np.bool_)):
            raise InputError(f"must be True or False, got {self.invert!r}", "invert")
        s(self, "invert", bool(self.invert))
        s(self, "frame_size_px", _int_pair(self.frame_size_px, "frame_size_px", 1))
        s(self, "frame_offset_px", _int_pair(self.frame_offset_px, "frame_offset_px", 0))
        if self.frame_scale is not None:
            s(self, "frame_scale", check_number(self.frame_scale, "frame_scale", 0.0, 64.0, lo_open=True))
        if self.ii_distortion is not None:
            expected = "None or 5 finite numbers [k1, k2, p1, p2, k3]"
            d = check_vector(self.ii_distortion if isinstance(self.ii_distortion, (list, tuple, np.ndarray)) else None,
                             5, "ii_distortion", expected=expected)
            s(self, "ii_distortion", tuple(float(x) for x in d))
        if self.display is not None and not isinstance(self.display, DisplaySettings):
            raise InputError(f"must be None or DisplaySettings, got {type(self.display).__name__}", "display")
        s(self, "seed", check_integer(self.seed, "seed", 0, 2**63 - 1))
