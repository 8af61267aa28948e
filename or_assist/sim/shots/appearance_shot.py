"""One shot with an :class:`~or_assist.sim.shots.appearance.Appearance`: polychromatic rays, then the chain.

:func:`simulate_appearance_shot` renders the CT twice on the fine (supersampled) detector,
once as water-equivalent and once as cortical-bone-equivalent volume fractions made
with the appearance's own HU split (:func:`or_assist.sim.shots.spectrum.hu_to_water_bone`),
which gives path lengths ``L_w`` and ``L_b`` in mm per ray. Metal (implants: titanium;
pin, rails, retractor, cables: steel unless an :class:`ExtraMetal` says otherwise) adds
exact chord lengths per material (:func:`or_assist.render.implants.metal_line_integrals`
with μ = 1). The primary transmission is
``T = sum_E w_E exp(-mu_w(E) L_w - mu_b(E) L_b - sum_metals mu_m(E) L_m)`` over the
appearance's Kramers spectrum (:mod:`or_assist.sim.shots.spectrum`), so thick paths
harden the beam; a monochromatic appearance uses one energy. Everything after the rays
is :func:`or_assist.sim.shots.simulate.shot_from_transmission` with
:meth:`Appearance.shot_settings`: focal-spot blur, S-distortion, collimation,
vignetting, scatter, photon noise, detector blur, log or linear display with gamma and
edge enhancement, framing and burnt-in text.

The detector image is ``geometry`` resampled (:meth:`CArmGeometry.resampled`, same
field) to ``detector_px`` pixels along its larger side. The returned
:attr:`SimulatedShot.geometry` and ``video_geometry`` hold the appearance's radial
intensifier distortion (``ii_k1``, modelled) but **not** its S-distortion (deliberately
unmodelled); the pose is the truth.

The two material renderers of a CT are cached (the last 4 CT / split pairs, by the CT
object's identity: treat ``ct.hu`` as read-only).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np

from or_assist.core.ct.volume import CTVolume
from or_assist.core.geometry import CArmGeometry
from or_assist.core.instruments import GuidePin
from or_assist.core.plan import Implant
from or_assist.core.pose import Pose
from or_assist.errors import InputError
from or_assist.render.drr import AttenuationVolume, DRRRenderer
from or_assist.render.implants import metal_line_integrals
from or_assist.sim.shots import chain
from or_assist.sim.shots.appearance import Appearance
from or_assist.sim.shots.clutter import extra_metal_meshes
from or_assist.sim.shots.simulate import SimulatedShot, check_shot_inputs, shot_from_transmission
from or_assist.sim.shots.spectrum import (
    Spectrum,
    hu_to_water_bone,
    kramers_spectrum,
    material_mu_per_mm,
    monochromatic_spectrum,
    polychromatic_transmission,
)

__all__ = ["appearance_spectrum", "simulate_appearance_shot"]

_HARDENING_WATER_MM = 200.0  # a monochromatic appearance uses the mean energy after this much water
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 4


def appearance_spectrum(appearance: Appearance) -> Spectrum:
    """The spectrum a shot with ``appearance`` uses.

    Polychromatic: :func:`~or_assist.sim.shots.spectrum.kramers_spectrum` of ``kvp``
    and ``filtration_mm_al``. Monochromatic: one energy, that spectrum's mean after
    200 mm of water (a beam hardened by a typical patient).
    """
    if not isinstance(appearance, Appearance):
        raise InputError(f"expected an Appearance, got {type(appearance).__name__}", "appearance")
    s = kramers_spectrum(appearance.kvp, appearance.filtration_mm_al)
    if appearance.polychromatic:
        return s
    w = s.weights * np.exp(-material_mu_per_mm("water", s.energies_kev) * _HARDENING_WATER_MM)
    return monochromatic_spectrum(float(np.dot(s.energies_kev, w) / w.sum()))


def _material_renderers(ct: CTVolume, breakpoint_hu: float, scale_hu: float) -> tuple[DRRRenderer, DRRRenderer]:
    key = (id(ct), breakpoint_hu, scale_hu)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is ct:
        _CACHE.move_to_end(key)
        return hit[1], hit[2]
    water, bone = hu_to_water_bone(ct.hu, breakpoint_hu, scale_hu)
    rw = DRRRenderer(AttenuationVolume(water, ct.origin_mm, ct.spacing_mm, ct.direction))
    rb = DRRRenderer(AttenuationVolume(bone, ct.origin_mm, ct.spacing_mm, ct.direction))
    _CACHE[key] = (ct, rw, rb)
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return rw, rb


def _detector_geometry(geometry, detector_px: int) -> CArmGeometry:
    if not isinstance(geometry, CArmGeometry):
        raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")
    w, h = geometry.image_size_px
    s = detector_px / max(w, h)
    return geometry.resampled(max(1, int(round(w * s))), max(1, int(round(h * s))))


def simulate_appearance_shot(ct: CTVolume, pose: Pose, geometry: CArmGeometry, appearance: Appearance, *,
                             pin: GuidePin | None = None, implants: Sequence[Implant] = (),
                             seed: int = 0) -> SimulatedShot:
    """Simulate one shot of ``ct`` with an appearance (module doc).

    Parameters
    ----------
    ct : CTVolume
        The patient, HU.
    pose : Pose
        ``T_source_from_patient`` (the truth).
    geometry : CArmGeometry
        The C-arm; its field is resampled to ``appearance.detector_px`` pixels along the
        larger side. Must have no distortion of its own when ``appearance.ii_k1 != 0``.
    appearance : Appearance
    pin : GuidePin, optional
        A steel guide pin.
    implants : sequence of Implant
        Titanium implants already placed.
    seed : int
        Seed of the photon noise (>= 0): the same inputs and seed give the same frame.

    Returns
    -------
    SimulatedShot
        ``settings`` is :meth:`Appearance.shot_settings`; ``geometry`` is that of the
        detector image and ``video_geometry`` that of the frame, without the S-distortion.

    Raises
    ------
    InputError
        A bad argument (named), a pose that puts the source inside the CT or misses it.
    """
    if not isinstance(ct, CTVolume):
        raise InputError(f"expected a CTVolume, got {type(ct).__name__}", "ct")
    if not isinstance(appearance, Appearance):
        raise InputError(f"expected an Appearance, got {type(appearance).__name__}", "appearance")
    det = _detector_geometry(geometry, appearance.detector_px)
    settings, objects, geom = check_shot_inputs(pose, det, pin, implants, appearance.shot_settings(), seed)
    spectrum = appearance_spectrum(appearance)
    water_r, bone_r = _material_renderers(ct, appearance.bone_hu_breakpoint, appearance.bone_scale)

    fine = chain.supersampled_geometry(geom, settings.supersample)
    step_mm = settings.step_fraction * float(ct.spacing_mm.min())
    lengths = {"water": water_r.render(pose, fine, step_mm=step_mm),
               "bone": bone_r.render(pose, fine, step_mm=step_mm)}
    meshes = [(o, "titanium" if isinstance(o, Implant) else "steel") for o in objects]
    meshes += list(zip(extra_metal_meshes(ct, list(appearance.extra_metal)),
                       (m.material for m in appearance.extra_metal)))
    metal_fine = None
    if meshes:
        metal_fine = np.zeros((fine.height, fine.width), np.float32)
        for material in sorted({m for _, m in meshes}):
            chord = metal_line_integrals(pose, fine, [o for o, m in meshes if m == material], 1.0)
            lengths[material] = chord
            metal_fine += np.float32(material_mu_per_mm(material, spectrum.mean_energy_kev)) * chord
    transmission = polychromatic_transmission(spectrum, lengths)
    return shot_from_transmission(transmission, pose, geom, settings, metal_fine=metal_fine, pin=pin)
