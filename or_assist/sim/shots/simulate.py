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
   isocentre), binned to the detector pixels, optionally warped by the intensifier's
   S-distortion (not in the geometry), stopped outside the collimated field, optionally
   darkened towards the edge (vignetting; :mod:`or_assist.sim.shots.processing`).
3. **Scatter and glare**: a fraction of the signal spread by a broad Gaussian.
4. **Quantum noise**: Poisson counts with ``i0_photons_per_px`` photons per pixel
   unattenuated, then the detector's (scintillator) blur, which correlates the noise.
5. **Display**: log, automatic window over the field, bone dark
   (:func:`or_assist.render.display.to_display`), optional inversion, optional edge
   enhancement (unsharp mask).
6. **Video**: scaled into the frame (e.g. 1920 x 1080) with a black surround, the
   collimated field, burnt-in white text, quantised to ``video_bits`` bits, uint8.

:func:`shot_from_transmission` runs steps 2-6 on a transmission computed elsewhere
(the polychromatic shots of :mod:`or_assist.sim.shots.appearance`).

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
from or_assist.errors import InputError
from or_assist.sim.shots import chain as chain
from or_assist.sim.shots import processing
from or_assist.sim.shots.settings import ShotSettings
from or_assist.render.display import DisplaySettings, to_display
from or_assist.render.drr import AttenuationVolume, DRRRenderer
from or_assist.render.implants import default_mu_per_mm, metal_line_integrals

__all__ = ["SimulatedShot", "simulate_shot", "check_shot_inputs", "shot_from_transmission"]

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_METAL_IGNORED = 0.05  # metal line integral above which a pixel is left out of the window
_MIN_COUNT = 0.5  # counts below half a photon are read as half a photon before the log
_DEFAULT_DISPLAY = DisplaySettings(percentiles=(1.0, 99.0))


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
    if not isinstance(implants, (list, tuple)) or not all(isinstance(i, (Implant, GuidePin)) for i in implants):
        raise InputError("must be a sequence of Implant (or GuidePin: a steel instrument)", "implants")
    return list(implants) + ([pin] if pin is not None else [])


def check_shot_inputs(pose, geometry, pin, implants, settings, seed):
    """Validate :func:`simulate_shot`'s arguments before anything is rendered.

    Returns
    -------
    settings : ShotSettings
        With ``seed`` applied.
    objects : list
        The implants, then the pin.
    geometry : CArmGeometry
        Of the detector image, with ``settings.ii_distortion``.
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
    chain.frame_layout(geom.image_size_px, settings.frame_size_px, settings.frame_scale, settings.frame_offset_px)
    return settings, objects, geom


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
    implants : sequence of Implant or GuidePin
        Titanium implants already placed; a :class:`GuidePin` among them is a steel
        instrument (a solid cylinder: a sleeve or drill guide around the pin, another pin).
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
    settings, objects, geom = check_shot_inputs(pose, geometry, pin, implants, settings, seed)
    renderer = _renderer(volume_or_ct, settings.energy_kev)

    # 1. rays on the fine detector
    fine = chain.supersampled_geometry(geom, settings.supersample)
    step_mm = settings.step_fraction * float(renderer.volume.spacing_mm.min())
    p = renderer.render(pose, fine, step_mm=step_mm)
    metal = None
    if objects:
        mus = [default_mu_per_mm(o, settings.energy_kev) for o in objects]
        metal = metal_line_integrals(pose, fine, objects, mus)
        p += metal
    return shot_from_transmission(np.exp(-p), pose, geom, settings, metal_fine=metal, pin=pin)


def shot_from_transmission(transmission_fine: np.ndarray, pose: Pose, geometry: CArmGeometry,
                           settings: ShotSettings, *, metal_fine: np.ndarray | None = None,
                           pin: GuidePin | None = None) -> SimulatedShot:
    """Steps 2-6 of the chain (module doc): from the primary transmission to the video frame.

    Parameters
    ----------
    transmission_fine : (H * s, W * s) float array
        Primary transmission (0-1, no scatter) of the rays on
        ``chain.supersampled_geometry(geometry, s)``, ``s = settings.supersample``.
    pose : Pose
        ``T_source_from_patient`` (the truth recorded in the shot).
    geometry : CArmGeometry
        Of the detector image, distortion included (:func:`check_shot_inputs`).
    settings : ShotSettings
    metal_fine : (H * s, W * s) float array, optional
        Metal line integrals on the same rays; pixels with metal are left out of the
        automatic window.
    pin : GuidePin, optional
        Projected into the frame for the ground truth (its metal is in the transmission).

    Returns
    -------
    SimulatedShot
    """
    geom, ss = geometry, settings.supersample
    layout = chain.frame_layout(geom.image_size_px, settings.frame_size_px, settings.frame_scale,
                                settings.frame_offset_px)
    fine = chain.supersampled_geometry(geom, ss)

    def field(radius_fraction, kind=settings.collimation, u_of_x=None, v_of_y=None):
        return chain.field_mask(geom.image_size_px, kind, radius_fraction, u_of_x, v_of_y,
                                offset_fraction=settings.collimation_offset_fraction, leaf=settings.collimation_leaf)

    # 2. primary: focal-spot blur at the fine resolution, S-distortion, collimator, bin to the detector
    fwhm_mm = settings.focal_spot_mm * (geom.magnification - 1.0)
    sigma_mm = fwhm_mm / _FWHM_PER_SIGMA
    primary = chain.gaussian_blur(transmission_fine, sigma_mm / fine.pixel_spacing_mm[0],
                                  sigma_mm / fine.pixel_spacing_mm[1])
    primary = processing.s_distortion(chain.bin_mean(primary, ss), settings.s_distortion_px)
    field_det = field(settings.collimation_radius_fraction)
    primary *= field_det
    primary_no_vignetting = primary.copy() if settings.vignetting > 0 else primary
    if settings.vignetting > 0:
        primary *= processing.vignetting_gain(geom.image_size_px, settings.vignetting)

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
    metering = field(settings.collimation_radius_fraction * settings.metering_fraction,
                     settings.collimation or "square") & field_det
    if not metering.any():  # a tiny detector: meter over the whole field
        metering = field_det
    if settings.metering_max_transmission < 1.0:  # brightness control ignores bare beam
        anatomy = primary_no_vignetting <= np.float32(settings.metering_max_transmission)
        if np.any(metering & anatomy):
            metering &= anatomy
    if metal_fine is not None:  # the window ignores metal (it saturates black), as C-arms clip it
        no_metal = chain.bin_mean(metal_fine, ss) < _METAL_IGNORED
        if np.any(metering & no_metal):
            metering &= no_metal
    shown = to_display(measured, display, mask=metering)
    shown = processing.unsharp_mask(shown, settings.unsharp_radius_px, settings.unsharp_gain)

    # 6. video frame
    frame = chain.place_in_frame(np.clip(shown, 0.0, 1.0) * np.float32(255.0), layout)
    fw, fh = layout.frame_size_px
    su, sv = layout.scale(geom.image_size_px)
    u_of_x = (np.arange(fw) - layout.offset_px[0] + 0.5) / su - 0.5
    v_of_y = (np.arange(fh) - layout.offset_px[1] + 0.5) / sv - 0.5
    fov = field(settings.collimation_radius_fraction, u_of_x=u_of_x, v_of_y=v_of_y)
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
