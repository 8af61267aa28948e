"""Appearance families: shots that differ from DRRs the way real C-arm images do.

Registration is tuned on the simulator's own shots; to validate it on shots it was not
tuned on, :func:`draw_appearance` draws a fully specified :class:`Appearance` from a
*family* and :func:`or_assist.sim.shots.appearance_shot.simulate_appearance_shot`
renders it (polychromatic beam with its own HU -> water/bone split, intensifier or flat
panel, processing, clutter). A family is a dict field -> range in
:data:`APPEARANCE_FAMILIES`: ``R(lo, hi)`` is drawn uniformly, a list is a choice (its
element drawn in turn), a tuple is drawn element by element, anything else is fixed.

Every family's automatic window ignores bare beam (primary transmission above 0.5).
Photon dose: ``i0_photons_per_px`` keeps the meaning it has in
:class:`~or_assist.sim.shots.settings.ShotSettings` (photons per detector pixel with
nothing in the beam). The ranges put the photons behind a lateral pelvis (transmission
about 1e-3) at about 100-2000 per pixel, the range the issue names.

Families (``lo-hi`` uniform, ``a | b`` a choice; i0 in units of 1e5 photons per pixel):

=========== ======= ======= ==== ====== ======= ============== ====== ======= ======== ===========================
family      kVp     Al mm   poly video  gamma   unsharp r/gain i0 1e5 blur px scatter  field, intensifier
=========== ======= ======= ==== ====== ======= ============== ====== ======= ======== ===========================
default     70-90   2.5-3.5 no   log    1       3 / 0          1-3    0.7     0.25     circle 0.97
intensifier 65-90   2.5-4   yes  log    0.8-1.2 2-6 / 1-2      2-6    0.8-1.5 0.25-0.4 circle 0.85-0.97;
                                                                                       vignetting 0.2-0.5,
                                                                                       S 3-10 px, k1 0.02-0.08
flat_panel  70-100  3-6     yes  log    0.6-1.4 1-3 / 0.2-0.6  5-20   0.3-0.6 0.15-0.3 square 0.8-1, offset
                                                                                       ±0.1 each, leaf: none | one
low_dose    60-75   2.5-4   yes  log    0.8-1.2 2-4 / 0-0.5    1-1.5  1.2-2.5 0.3-0.45 circle 0.9-0.97;
                                                                                       vignetting 0-0.2
hard_beam   110-120 2.5-3.5 yes  linear 0.7-1.3 2-4 / 0-0.3    3-10   0.5-1   0.3-0.5  circle | square 0.9-0.97
cluttered   70-95   2.5-4   yes  log    0.8-1.2 2-4 / 0.3-1    2-6    0.6-1   0.2-0.35 circle | square 0.9-0.97,
                                                                                       one leaf; vignetting 0-0.2;
                                                                                       rails, retractor, cables
=========== ======= ======= ==== ====== ======= ============== ====== ======= ======== ===========================

Other fields: HU -> water/bone breakpoint 0-150 HU and scale 1200-2200 HU per unit of
cortical bone (default: 0-100 / 1500-2000; hard_beam 100-300 / 1000-1800); range
compression 0.5-0.9 (default 0.8; flat_panel 0.6-0.9; hard_beam 0.6-0.9, applied before
the linear response); S-distortion, vignetting and k1 0 unless listed; detector 512 | 768
| 1024 px (flat_panel 1024 | 1280 | 1536); frames 1920 x 1080 (intensifier 768 x 576 PAL; flat_panel also 1280 x 1024).
Partial fields: one leaf at 0.3-0.8 of the field radius, any angle. Clutter (cluttered
only): two steel table rails 8-14 mm under the patient (body box y fraction 1.02-1.08,
x 0.5 ± 0.12-0.2, along S), a steel retractor blade 20-35 x 1.5-2.5 mm, 100-140 mm
long, at the right flank (x fraction -0.1-0.05, y 0.55-0.75, z 0.45-0.65, pointing
laterally within 20 degrees), and 1-3 steel cables 1-2.5 mm thick, 300 mm long, through
the body box's middle (fractions 0.35-0.65) in random directions.

Examples
--------
>>> a = draw_appearance("intensifier", np.random.default_rng(1))
>>> a.family, a.collimation, a.log_display
('intensifier', 'circle', True)
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np

from or_assist.core.validate import check_bool, check_choice, check_integer, check_number
from or_assist.errors import InputError
from or_assist.render.display import DisplaySettings
from or_assist.sim.shots.clutter import ExtraMetal
from or_assist.sim.shots.settings import ShotSettings

__all__ = ["R", "APPEARANCE_FAMILIES", "Appearance", "draw_appearance"]


class R(NamedTuple):
    """A uniform range ``[lo, hi]`` in a family (integers when both ends are)."""

    lo: float
    hi: float


# field -> (lo, hi) for the numbers an Appearance accepts (wider than the families' ranges)
_NUMBERS = {
    "kvp": (60.0, 120.0), "filtration_mm_al": (0.0, 10.0), "bone_hu_breakpoint": (-200.0, 500.0),
    "bone_scale": (500.0, 4000.0), "range_compression": (0.0, 1.0), "gamma": (0.5, 1.5),
    "unsharp_radius_px": (0.1, 100.0), "unsharp_gain": (0.0, 5.0), "i0_photons_per_px": (10.0, 1e12),
    "detector_blur_px": (0.0, 50.0), "scatter_fraction": (0.0, 0.9), "vignetting": (0.0, 0.5),
    "s_distortion_px": (0.0, 50.0), "ii_k1": (-0.5, 0.5), "collimation_radius_fraction": (0.1, 1.0),
}


_METERING_MAX_TRANSMISSION = 0.5  # the window ignores bare beam (the anatomy sets it)


@dataclass(frozen=True)
class Appearance:
    """One drawn, fully specified look of a simulated shot (module doc for the families).

    Attributes
    ----------
    family : str
        Name of the family it was drawn from (free text for a hand-made one).
    kvp : float
        Tube voltage, kV (60-120).
    filtration_mm_al : float
        Total filtration, mm aluminium (0-10).
    polychromatic : bool
        Kramers spectrum (beam hardening); else one energy, the spectrum's mean after
        200 mm of water.
    bone_hu_breakpoint, bone_scale : float
        The HU -> water/bone split that makes the shot
        (:func:`or_assist.sim.shots.spectrum.hu_to_water_bone`; -200-500 HU, 500-4000 HU
        per unit cortical bone), unlike the registration's ``hu_to_attenuation``.
    log_display : bool
        Log (True) or linear (transmitted intensity) video response.
    range_compression : float
        Share of the broad-scale variation removed (0-1; ``ShotSettings``).
    gamma : float
        Display gamma, 0.5-1.5.
    unsharp_radius_px, unsharp_gain : float
        Edge enhancement (radius 0.1-100 detector px, gain 0-5).
    i0_photons_per_px : float
        Photons per detector pixel unattenuated (10-1e12; module doc).
    detector_blur_px, scatter_fraction : float
        As in ``ShotSettings`` (0-50 px, 0-0.9).
    vignetting : float
        Signal at the screen's edge is ``1 - vignetting`` of the centre's (0-0.5).
    s_distortion_px : float
        Amplitude of the unmodelled S-distortion, detector px (0-50).
    ii_k1 : float
        Radial intensifier distortion ``k1`` (-0.5-0.5; 0 = none), modelled: it goes into
        the shot's geometry.
    collimation : {"circle", "square", None}
    collimation_radius_fraction : float
        0.1-1 of half the detector's smaller side.
    collimation_offset_fraction : (du, dv)
        Field centre shift (each -0.5-0.5).
    collimation_leaf : (distance_fraction, angle_deg) or None
        A partial field (``ShotSettings``).
    detector_px : int
        Pixels along the detector's larger side (64-4096; the families use 512-1536).
    frame_size_px : (width, height) or None
        Video frame; None = the detector image.
    burnt_in_text : bool
    invert : bool
    extra_metal : tuple of ExtraMetal
        Objects in the shot that the CT does not have.
    """

    family: str
    kvp: float = 80.0
    filtration_mm_al: float = 3.0
    polychromatic: bool = True
    bone_hu_breakpoint: float = 50.0
    bone_scale: float = 1700.0
    log_display: bool = True
    range_compression: float = 0.8
    gamma: float = 1.0
    unsharp_radius_px: float = 3.0
    unsharp_gain: float = 0.0
    i0_photons_per_px: float = 2e5
    detector_blur_px: float = 0.7
    scatter_fraction: float = 0.25
    vignetting: float = 0.0
    s_distortion_px: float = 0.0
    ii_k1: float = 0.0
    collimation: str | None = "circle"
    collimation_radius_fraction: float = 0.97
    collimation_offset_fraction: tuple[float, float] = (0.0, 0.0)
    collimation_leaf: tuple[float, float] | None = None
    detector_px: int = 512
    frame_size_px: tuple[int, int] | None = None
    burnt_in_text: bool = True
    invert: bool = False
    extra_metal: tuple = ()

    def __post_init__(self):
        s = object.__setattr__
        if not isinstance(self.family, str) or not self.family.strip():
            raise InputError(f"must be a non-empty string, got {self.family!r}", "family")
        for name, (lo, hi) in _NUMBERS.items():
            s(self, name, check_number(getattr(self, name), name, lo, hi))
        for name in ("polychromatic", "log_display", "burnt_in_text", "invert"):
            s(self, name, check_bool(getattr(self, name), name))
        check_choice(self.collimation, ("circle", "square", None), "collimation")
        s(self, "detector_px", check_integer(self.detector_px, "detector_px", 64, 4096))
        metal = self.extra_metal
        if not isinstance(metal, (list, tuple)) or not all(isinstance(m, ExtraMetal) for m in metal):
            raise InputError(f"must be a sequence of ExtraMetal, got {metal!r}", "extra_metal")
        s(self, "extra_metal", tuple(metal))
        settings = self.shot_settings()  # validates the fields passed on (frame, field offset, leaf)
        for name in ("collimation_offset_fraction", "collimation_leaf", "frame_size_px"):
            s(self, name, getattr(settings, name))

    def shot_settings(self, seed: int = 0) -> ShotSettings:
        """The :class:`ShotSettings` of the chain after the rays (the physics is the appearance's).

        Parameters
        ----------
        seed : int
            Seed of the photon noise.
        """
        display = DisplaySettings(mode="log" if self.log_display else "transmitted", gamma=self.gamma,
                                  percentiles=(1.0, 99.0))
        text = {} if self.burnt_in_text else {"text_top": (), "text_bottom": ()}
        return ShotSettings(
            i0_photons_per_px=self.i0_photons_per_px, detector_blur_px=self.detector_blur_px,
            scatter_fraction=self.scatter_fraction, range_compression=self.range_compression,
            collimation=self.collimation, collimation_radius_fraction=self.collimation_radius_fraction,
            collimation_offset_fraction=self.collimation_offset_fraction, collimation_leaf=self.collimation_leaf,
            vignetting=self.vignetting, s_distortion_px=self.s_distortion_px,
            unsharp_radius_px=self.unsharp_radius_px, unsharp_gain=self.unsharp_gain,
            frame_size_px=self.frame_size_px, invert=self.invert,
            ii_distortion=None if self.ii_k1 == 0 else (self.ii_k1, 0.0, 0.0, 0.0, 0.0),
            metering_max_transmission=_METERING_MAX_TRANSMISSION, display=display, seed=seed, **text)


_LEAF = (R(0.3, 0.8), R(0.0, 360.0))
_BASE = {
    "kvp": R(70.0, 95.0), "filtration_mm_al": R(2.5, 4.0), "polychromatic": True,
    "bone_hu_breakpoint": R(0.0, 150.0), "bone_scale": R(1200.0, 2200.0), "log_display": True,
    "range_compression": R(0.5, 0.9), "gamma": R(0.8, 1.2), "unsharp_radius_px": R(2.0, 4.0),
    "unsharp_gain": R(0.0, 0.5), "i0_photons_per_px": R(2e5, 6e5), "detector_blur_px": R(0.6, 1.0),
    "scatter_fraction": R(0.2, 0.35), "vignetting": 0.0, "s_distortion_px": 0.0, "ii_k1": 0.0,
    "collimation": "circle", "collimation_radius_fraction": R(0.9, 0.97), "collimation_offset_fraction": (0.0, 0.0),
    "collimation_leaf": None, "detector_px": [512, 768, 1024], "frame_size_px": (1920, 1080),
    "burnt_in_text": True, "invert": False, "extra_metal": (),
}
_OVERRIDES = {
    "default": {"kvp": R(70.0, 90.0), "filtration_mm_al": R(2.5, 3.5), "polychromatic": False,
                "bone_hu_breakpoint": R(0.0, 100.0), "bone_scale": R(1500.0, 2000.0), "range_compression": 0.8,
                "gamma": 1.0, "unsharp_radius_px": 3.0, "unsharp_gain": 0.0, "i0_photons_per_px": R(1e5, 3e5),
                "detector_blur_px": 0.7, "scatter_fraction": 0.25, "collimation_radius_fraction": 0.97},
    "intensifier": {"kvp": R(65.0, 90.0), "unsharp_radius_px": R(2.0, 6.0), "unsharp_gain": R(1.0, 2.0),
                    "detector_blur_px": R(0.8, 1.5), "scatter_fraction": R(0.25, 0.4), "vignetting": R(0.2, 0.5),
                    "s_distortion_px": R(3.0, 10.0), "ii_k1": R(0.02, 0.08),
                    "collimation_radius_fraction": R(0.85, 0.97), "frame_size_px": (768, 576)},
    "flat_panel": {"kvp": R(70.0, 100.0), "filtration_mm_al": R(3.0, 6.0), "range_compression": R(0.6, 0.9),
                   "gamma": R(0.6, 1.4), "unsharp_radius_px": R(1.0, 3.0), "unsharp_gain": R(0.2, 0.6),
                   "i0_photons_per_px": R(5e5, 2e6), "detector_blur_px": R(0.3, 0.6),
                   "scatter_fraction": R(0.15, 0.3), "collimation": "square",
                   "collimation_radius_fraction": R(0.8, 1.0), "collimation_offset_fraction": (R(-0.1, 0.1), R(-0.1, 0.1)),
                   "collimation_leaf": [None, _LEAF], "detector_px": [1024, 1280, 1536],
                   "frame_size_px": [(1920, 1080), (1280, 1024)]},
    "low_dose": {"kvp": R(60.0, 75.0), "i0_photons_per_px": R(1e5, 1.5e5), "detector_blur_px": R(1.2, 2.5),
                 "scatter_fraction": R(0.3, 0.45), "vignetting": R(0.0, 0.2), "unsharp_radius_px": R(2.0, 4.0),
                 "unsharp_gain": R(0.0, 0.5)},
    "hard_beam": {"kvp": R(110.0, 120.0), "filtration_mm_al": R(2.5, 3.5), "bone_hu_breakpoint": R(100.0, 300.0),
                  "bone_scale": R(1000.0, 1800.0), "log_display": False, "range_compression": R(0.6, 0.9),
                  "gamma": R(0.7, 1.3), "unsharp_gain": R(0.0, 0.3), "i0_photons_per_px": R(3e5, 1e6),
                  "detector_blur_px": R(0.5, 1.0), "scatter_fraction": R(0.3, 0.5),
                  "collimation": ["circle", "square"]},
    "cluttered": {"unsharp_gain": R(0.3, 1.0), "vignetting": R(0.0, 0.2), "collimation": ["circle", "square"],
                  "collimation_leaf": _LEAF, "extra_metal": ("rails", "retractor", "cables")},
}
#: Family name -> field -> range (module doc): what :func:`draw_appearance` draws from.
APPEARANCE_FAMILIES = {name: {**_BASE, **over} for name, over in _OVERRIDES.items()}


def _draw(spec, rng: np.random.Generator):
    if isinstance(spec, R):
        if isinstance(spec.lo, int) and isinstance(spec.hi, int):
            return int(rng.integers(spec.lo, spec.hi + 1))
        return float(rng.uniform(spec.lo, spec.hi))
    if isinstance(spec, list):
        return _draw(spec[int(rng.integers(len(spec)))], rng)
    if isinstance(spec, tuple):
        return tuple(_draw(x, rng) for x in spec)
    return spec


def _draw_clutter(kinds, rng: np.random.Generator) -> tuple:
    """ExtraMetal objects for the clutter kinds named (module doc for the ranges)."""
    out = []
    for kind in kinds:
        if kind == "rails":
            half, d, y = rng.uniform(0.12, 0.2), rng.uniform(8.0, 14.0), rng.uniform(1.02, 1.08)
            out += [ExtraMetal("rail", (0.5 + sgn * half, y, 0.5), (0, 0, 1), 400.0, d) for sgn in (-1, 1)]
        elif kind == "retractor":
            pos = (rng.uniform(-0.1, 0.05), rng.uniform(0.55, 0.75), rng.uniform(0.45, 0.65))
            tilt = np.radians(rng.uniform(-20.0, 20.0, size=2))
            axis = (1.0, np.tan(tilt[0]), np.tan(tilt[1]))
            out.append(ExtraMetal("retractor", pos, axis, rng.uniform(100.0, 140.0), rng.uniform(20.0, 35.0),
                                  rng.uniform(1.5, 2.5), rng.uniform(0.0, 180.0)))
        elif kind == "cables":
            for _ in range(int(rng.integers(1, 4))):
                axis = rng.normal(size=3)
                out.append(ExtraMetal("cable", tuple(rng.uniform(0.35, 0.65, size=3)), axis / np.linalg.norm(axis),
                                      300.0, rng.uniform(1.0, 2.5)))
        else:
            raise InputError(f"unknown clutter {kind!r}; expected rails, retractor or cables", "extra_metal")
    return tuple(out)


def draw_appearance(family: str, rng: np.random.Generator) -> Appearance:
    """Draw one :class:`Appearance` from a family (module doc for the ranges).

    Parameters
    ----------
    family : str
        A key of :data:`APPEARANCE_FAMILIES`.
    rng : numpy.random.Generator
        The only source of randomness: the same generator state gives the same appearance.

    Returns
    -------
    Appearance
    """
    check_choice(family, tuple(APPEARANCE_FAMILIES), "family")
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"must be a numpy.random.Generator, got {type(rng).__name__}", "rng")
    spec = APPEARANCE_FAMILIES[family]
    values = {}
    for f in fields(Appearance):
        if f.name == "family":
            continue
        if f.name == "extra_metal":
            values[f.name] = _draw_clutter(spec[f.name], rng)
        else:
            values[f.name] = _draw(spec[f.name], rng)
    return Appearance(family=family, **values)
