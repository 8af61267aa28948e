"""Realistic synthetic fluoroscopy: one C-arm shot as a frame grabber would deliver it.

For tests, demos and benchmarks. :func:`simulate_shot` renders a CT at a pose, with an
optional guide pin and implants already placed, through a model of the imaging chain:

1. **Rays** on a detector ``supersample`` times finer than the shot's (default 2 x 2
   rays per pixel) at a step of ``step_fraction`` (default 0.25) of the smallest voxel,
   finer than registration renders (half a voxel, whole pixels), so a benchmark built
   on these shots is not an inverse crime. Metal is added exactly
   (:func:`or_assist.render.implants.metal_line_integrals`: steel pin, titanium
   implants). Image-intensifier distortion goes into the geometry, so the picture is
   the distorted one and :func:`or_assist.core.geometry.project` with
   :attr:`SimulatedShot.geometry` predicts where things appear (``CONVENTIONS.md``).
2. **Primary** transmission ``exp(-p)``, blurred by the focal spot (a Gaussian whose
   FWHM is the focal-spot size times ``M - 1``, ``M`` the magnification at the
   isocentre), stopped outside the collimated field, binned to the detector pixels.
3. **Scatter and glare**: a fraction of the signal spread by a broad Gaussian.
4. **Quantum noise**: Poisson counts with ``i0_photons_per_px`` photons per pixel
   unattenuated, then the detector's (scintillator) blur, which correlates the noise.
5. **Display**: log, automatic window over the field, bone dark
   (:func:`or_assist.render.display.to_display`), optional inversion.
6. **Video**: scaled into the frame (e.g. 1920 x 1080) with a black surround, the
   collimated field, burnt-in white text, quantised to ``video_bits`` bits, uint8.

The only randomness is the photon noise, drawn from ``numpy.random.default_rng(seed)``:
the same inputs and seed give the identical frame.

Examples
--------
>>> shot = simulate_shot(ct, pose, geometry, pin=pin,                      # doctest: +SKIP
...                      settings=ShotSettings(frame_size_px=(1920, 1080)))
>>> shot.frame.shape, shot.pin_tip_px                                      # doctest: +SKIP
((1080, 1920), array([951.2, 533.8]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from or_assist.core.geometry import CArmGeometry, project
from or_assist.core.pose import Pose
from or_assist.core.instruments import GuidePin
from or_assist.core.plan import Implant
from or_assist.core.validate import check_choice, check_integer, check_number, check_vector
from or_assist.errors import InputError
from or_assist.sim.shots import chain as chain
from or_assist.render.display import DisplaySettings, to_display
from or_assist.render.drr import AttenuationVolume, DRRRenderer
from or_assist.render.implants import default_mu_per_mm, metal_line_integrals

__all__ = ["COLLIMATIONS", "DEFAULT_TEXT_TOP", "DEFAULT_TEXT_BOTTOM", "ShotSettings", "SimulatedShot",
           "simulate_shot"]

COLLIMATIONS = ("circle", "square", None)
#: Burnt-in text of a default shot: a fake patient field and a date (top left) ...
DEFAULT_TEXT_TOP = ("DEMO^PATIENT  ID 0000000", "2024-05-14  10:32:07")
#: ... and exposure values (bottom left).
DEFAULT_TEXT_BOTTOM = ("96 kV  2.6 mA  FL", "SIJF DEMO")

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_METAL_IGNORED = 0.05  # metal line integral above which a pixel is left out of the window
_MIN_COUNT = 0.5  # counts below half a photon are read as half a photon before the log
_DEFAULT_DISPLAY = DisplaySettings(percentiles=(1.0, 99.0))


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
    text_top, text_bottom : sequence of str
        Burnt-in lines at the frame's top-left and bottom-left corners (white).
    metering_fraction : float
        The automatic window is taken from the central part of the field, this fraction
        of its radius (0.1-1; default 0.6), like a C-arm's brightness metering field.
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
    text_top: Sequence[str] = DEFAULT_TEXT_TOP
    text_bottom: Sequence[str] = DEFAULT_TEXT_BOTTOM
    metering_fraction: float = 0.6
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
        s(self, "text_top", _lines(self.text_top, "text_top"))
        s(self, "text_bottom", _lines(self.text_bottom, "text_bottom"))
        s(self, "metering_fraction", check_number(self.metering_fraction, "metering_fraction", 0.1, 1.0))
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


@dataclass(frozen=True, eq=False)
class SimulatedShot:
    """One simulated shot and its ground truth.

    Attributes
    ----------
    frame : (Hf, Wf) uint8 ndarray
        The video frame as a grabber delivers it (bone dark unless inverted).
    image : (H, W) float32 ndarray
        The detector signal before display and framing: detected counts / i0 (1 = air,
        with scatter, noise and detector blur; outside the field only scatter).
    expected_image : (H, W) float32 ndarray
        The same without photon noise and detector blur (its mean).
    pose : Pose
        ``T_source_from_patient`` of the shot.
    geometry : CArmGeometry
        Of the detector image (with the intensifier distortion, if any).
    video_geometry : CArmGeometry
        Of the frame's pixels: :func:`or_assist.core.geometry.project` with it gives
        frame pixels.
    fov_mask : (Hf, Wf) bool ndarray
        The collimated field in frame pixels.
    text_mask : (Hf, Wf) bool ndarray
        Pixels touched by burnt-in text.
    pin : GuidePin or None
    pin_tip_px, pin_tail_px : (2,) float64 ndarray or None
        The pin's tip and back end projected into the frame (``video_geometry``).
    seed : int
        Seed of the photon noise.
    settings : ShotSettings
    """

    frame: np.ndarray
    image: np.ndarray
    expected_image: np.ndarray
    pose: Pose
    geometry: CArmGeometry
    video_geometry: CArmGeometry
    fov_mask: np.ndarray
    text_mask: np.ndarray
    pin: GuidePin | None
    pin_tip_px: np.ndarray | None
    pin_tail_px: np.ndarray | None
    seed: int
    settings: ShotSettings = field(repr=False)


def _renderer(volume_or_ct, energy_kev: float) -> DRRRenderer:
    if isinstance(volume_or_ct, DRRRenderer):
        return volume_or_ct
    if isinstance(volume_or_ct, AttenuationVolume):
        return DRRRenderer(volume_or_ct)
    if hasattr(volume_or_ct, "hu"):
        return DRRRenderer(AttenuationVolume.from_ct(volume_or_ct, energy_kev=energy_kev))
    raise InputError(f"expected a CTVolume, an AttenuationVolume or a DRRRenderer, got "
                     f"{type(volume_or_ct).__name__}", "volume_or_ct")


def _shot_geometry(geometry, settings: ShotSettings) -> CArmGeometry:
    if not isinstance(geometry, CArmGeometry):
        raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")
    if settings.ii_distortion is None:
        return geometry
    if geometry.distortion is not None and \
            not np.allclose(geometry.distortion, settings.ii_distortion, rtol=0, atol=1e-12):
        raise InputError("has its own distortion and settings.ii_distortion differs; give the "
                         "distortion in one place only", "geometry")
    return geometry.with_changes(distortion=np.asarray(settings.ii_distortion))


def _objects(pin, implants) -> list:
    if pin is not None and not isinstance(pin, GuidePin):
        raise InputError(f"must be None or a GuidePin, got {type(pin).__name__}", "pin")
    if isinstance(implants, Implant):
        implants = (implants,)
    if not isinstance(implants, (list, tuple)) or not all(isinstance(i, Implant) for i in implants):
        raise InputError("must be a sequence of Implant", "implants")
    return list(implants) + ([pin] if pin is not None else [])


def simulate_shot(volume_or_ct, pose: Pose, geometry: CArmGeometry, *, pin: GuidePin | None = None,
                  implants: Sequence[Implant] = (), settings: ShotSettings | None = None,
                  seed: int | None = None) -> SimulatedShot:
    """Simulate one fluoroscopy shot (module doc).

    Parameters
    ----------
    volume_or_ct : CTVolume, AttenuationVolume or DRRRenderer
        The patient; pass a :class:`DRRRenderer` to reuse it across shots (building
        one crops and pads the volume, about 0.3 s for a clinical CT).
    pose : Pose
        ``T_source_from_patient``.
    geometry : CArmGeometry
        The detector image (size, pixel spacing, principal point).
    pin : GuidePin, optional
        A steel guide pin, anywhere in front of the source.
    implants : sequence of Implant
        Titanium implants already placed.
    settings : ShotSettings, optional
        Default :class:`ShotSettings()`.
    seed : int, optional
        Overrides ``settings.seed``.

    Returns
    -------
    SimulatedShot

    Raises
    ------
    InputError
        Bad argument, a pose that puts the source inside the CT or misses it, or a
        frame too small for the image.
    """
    settings = ShotSettings() if settings is None else settings
    if not isinstance(settings, ShotSettings):
        raise InputError(f"expected ShotSettings, got {type(settings).__name__}", "settings")
    if seed is not None:
        settings = replace(settings, seed=seed)
    if not isinstance(pose, Pose):
        raise InputError(f"expected a Pose (T_source_from_patient), got {type(pose).__name__}", "pose")
    objects = _objects(pin, implants)
    geom = _shot_geometry(geometry, settings)
    layout = chain.frame_layout(geom.image_size_px, settings.frame_size_px, settings.frame_scale,
                                settings.frame_offset_px)
    renderer = _renderer(volume_or_ct, settings.energy_kev)

    # 1. rays on the fine detector
    ss = settings.supersample
    fine = chain.supersampled_geometry(geom, ss)
    step_mm = settings.step_fraction * float(renderer.volume.spacing_mm.min())
    p = renderer.render(pose, fine, step_mm=step_mm)
    metal = None
    if objects:
        mus = [default_mu_per_mm(o, settings.energy_kev) for o in objects]
        metal = metal_line_integrals(pose, fine, objects, mus)
        p += metal

    # 2. primary: focal-spot blur at the fine resolution, collimator, bin to the detector
    primary = np.exp(-p)
    fwhm_mm = settings.focal_spot_mm * (geom.magnification - 1.0)
    sigma_mm = fwhm_mm / _FWHM_PER_SIGMA
    primary = chain.gaussian_blur(primary, sigma_mm / fine.pixel_spacing_mm[0], sigma_mm / fine.pixel_spacing_mm[1])
    primary = chain.bin_mean(primary, ss)
    field_det = chain.field_mask(geom.image_size_px, settings.collimation, settings.collimation_radius_fraction)
    primary *= field_det

    # 3. scatter and glare; 4. photons, detector blur
    px, py = geom.pixel_spacing_mm
    expected = chain.glare(primary, settings.scatter_fraction, settings.scatter_kernel_mm / px,
                           settings.scatter_kernel_mm / py)
    rng = np.random.default_rng(settings.seed)
    i0 = settings.i0_photons_per_px
    counts = chain.poisson_counts(expected * i0, rng)
    counts = chain.gaussian_blur(counts, settings.detector_blur_px, settings.detector_blur_px)
    image = counts / np.float32(i0)

    # 5. display
    measured = -np.log(np.maximum(counts, np.float32(_MIN_COUNT)) / np.float32(i0))
    measured = chain.compress_range(measured, field_det, settings.range_compression,
                                    settings.range_compression_kernel_mm / px,
                                    settings.range_compression_kernel_mm / py)
    display = settings.display if settings.display is not None else _DEFAULT_DISPLAY
    display = replace(display, output="float32", invert=display.invert != settings.invert)
    metering = chain.field_mask(geom.image_size_px, settings.collimation or "square",
                                settings.collimation_radius_fraction * settings.metering_fraction)
    if not metering.any():  # a tiny detector: meter over the whole field
        metering = field_det
    if metal is not None:  # the window ignores metal (it saturates black), as C-arms clip it
        no_metal = chain.bin_mean(metal, ss) < _METAL_IGNORED
        if np.any(metering & no_metal):
            metering &= no_metal
    shown = to_display(measured, display, mask=metering)

    # 6. video frame
    frame = chain.place_in_frame(shown * np.float32(255.0), layout)
    fw, fh = layout.frame_size_px
    su, sv = layout.scale(geom.image_size_px)
    u_of_x = (np.arange(fw) - layout.offset_px[0] + 0.5) / su - 0.5
    v_of_y = (np.arange(fh) - layout.offset_px[1] + 0.5) / sv - 0.5
    fov = chain.field_mask(geom.image_size_px, settings.collimation, settings.collimation_radius_fraction,
                           u_of_x, v_of_y)
    frame[~fov] = 0.0
    text_mask = chain.burn_text(frame, settings.text_top, settings.text_bottom)
    video_geometry = chain.frame_geometry(geom, layout)
    tip = tail = None
    if pin is not None:
        tip, tail = project(np.stack([pin.tip_lps_mm, pin.back_lps_mm]), pose, video_geometry)
    return SimulatedShot(
        frame=chain.quantise(frame, settings.video_bits), image=image.astype(np.float32),
        expected_image=expected, pose=pose, geometry=geom, video_geometry=video_geometry,
        fov_mask=fov, text_mask=text_mask, pin=pin, pin_tip_px=tip, pin_tail_px=tail,
        seed=settings.seed, settings=settings)
