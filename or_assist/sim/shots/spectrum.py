"""Polychromatic X-ray physics for the shot simulator: tube spectra, materials, beam hardening.

A shot made with one effective energy attenuates every millimetre alike; a real tube
emits a spectrum whose soft part is absorbed first, so the beam hardens along the path
and the effective attenuation per mm falls with the path length ("beam hardening").
This module supplies what :mod:`or_assist.sim.shots.appearance` needs to model that:

* :func:`kramers_spectrum`: Kramers' law for the bremsstrahlung of a tube at ``kvp``,
  photon number per unit energy ``N(E) ∝ (kVp - E) / E``, filtered by
  ``filtration_mm_al`` mm of aluminium (``exp(-mu_Al(E) t)``) and weighted by the
  energy each photon deposits in an energy-integrating detector (``∝ E``), so
  ``w(E) ∝ (kVp - E) exp(-mu_Al(E) t)``; characteristic lines, the anode heel and the
  detector's absorption efficiency are left out. Binned into ``n_bins`` equal-width
  bins from 15 keV (below that the filter absorbs everything) to ``kvp``; each bin is
  represented by its weighted mean energy.
* :func:`material_mu_per_mm`: linear attenuation of water and cortical bone
  (:mod:`or_assist.core.ct.attenuation`, NIST SRD 126), titanium and steel
  (:mod:`or_assist.render.implants`) and aluminium: μ/ρ (cm²/g) of aluminium (Z = 13,
  ρ = 2.699 g/cm³) from NIST Standard Reference Database 126 (Hubbell & Seltzer,
  NISTIR 5632, Table 3; the values XCOM gives): 26.23, 7.955, 3.441, 1.128, 0.5685,
  0.3681, 0.2778, 0.2018, 0.1704, 0.1378, 0.1223 at 10, 15, 20, 30, 40, 50, 60, 80, 100,
  150, 200 keV, interpolated log-log.
* :func:`polychromatic_transmission`:
  ``T = sum_E w_E exp(-sum_m mu_m(E) L_m)`` over the bins ``E`` and materials ``m``
  with path lengths ``L_m`` (mm).
* :func:`hu_to_water_bone`: the two-material split of a CT (water-equivalent and
  cortical-bone-equivalent volume fractions) with a chosen breakpoint and scale.

Examples
--------
>>> s = kramers_spectrum(80.0, 3.0)
>>> len(s.energies_kev), round(float(s.weights.sum()), 6)
(10, 1.0)
>>> t = polychromatic_transmission(s, {"water": np.array([10.0, 200.0])})
>>> bool(-np.log(t[1]) / 200.0 < -np.log(t[0]) / 10.0)   # harder beam after 200 mm
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from or_assist.core.ct.attenuation import loglog_mu_rho, mu_cortical_bone_per_mm, mu_water_per_mm
from or_assist.core.validate import check_integer, check_number
from or_assist.errors import InputError
from or_assist.render.implants import metal_mu_per_mm

__all__ = [
    "MATERIALS",
    "Spectrum",
    "kramers_spectrum",
    "monochromatic_spectrum",
    "material_mu_per_mm",
    "polychromatic_transmission",
    "hu_to_water_bone",
]

# NIST SRD 126, Table 3, aluminium mu/rho (cm^2/g) at core.ct.attenuation's energies.
_ALUMINIUM_MU_RHO = np.array([26.23, 7.955, 3.441, 1.128, 0.5685, 0.3681, 0.2778, 0.2018, 0.1704, 0.1378, 0.1223])
_ALUMINIUM_DENSITY_G_CM3 = 2.699
_LOWEST_KEV = 15.0
_SUBSAMPLES = 16  # energies per bin for the bin's weight and mean energy

#: Materials :func:`material_mu_per_mm` knows.
MATERIALS = ("water", "bone", "aluminium", "titanium", "steel")


@dataclass(frozen=True, eq=False)
class Spectrum:
    """A binned X-ray spectrum as the detector weighs it.

    Attributes
    ----------
    energies_kev : (n,) float64 ndarray
        Representative energy of each bin, keV (15-200).
    weights : (n,) float64 ndarray
        Share of the detected (energy-integrated) signal in each bin; sums to 1.
    """

    energies_kev: np.ndarray
    weights: np.ndarray

    @property
    def mean_energy_kev(self) -> float:
        """Signal-weighted mean energy, keV."""
        return float(np.dot(self.energies_kev, self.weights))


def kramers_spectrum(kvp: float, filtration_mm_al: float, n_bins: int = 10) -> Spectrum:
    """Kramers' law spectrum of a tube at ``kvp``, filtered by aluminium, binned (module doc).

    Parameters
    ----------
    kvp : float
        Tube voltage, kV (40-150).
    filtration_mm_al : float
        Total filtration, mm of aluminium (0-20).
    n_bins : int
        Energy bins (1-64; default 10).

    Returns
    -------
    Spectrum
    """
    kvp = check_number(kvp, "kvp", 40.0, 150.0, unit="kV")
    t_mm = check_number(filtration_mm_al, "filtration_mm_al", 0.0, 20.0, unit="mm Al")
    n_bins = check_integer(n_bins, "n_bins", 1, 64)
    edges = np.linspace(_LOWEST_KEV, kvp, n_bins + 1)
    energies, weights = np.empty(n_bins), np.empty(n_bins)
    for i in range(n_bins):
        e = np.linspace(edges[i], edges[i + 1], _SUBSAMPLES + 1)
        e = 0.5 * (e[1:] + e[:-1])
        w = (kvp - e) * np.exp(-material_mu_per_mm("aluminium", e) * t_mm)
        weights[i] = w.sum()
        energies[i] = np.dot(w, e) / w.sum() if w.sum() > 0 else e.mean()
    if not weights.sum() > 0:
        raise InputError(f"{t_mm:g} mm of aluminium leaves no signal at {kvp:g} kV", "filtration_mm_al")
    return Spectrum(energies, weights / weights.sum())


def monochromatic_spectrum(energy_kev: float) -> Spectrum:
    """A single energy (keV, 15-200): no beam hardening."""
    e = check_number(energy_kev, "energy_kev", _LOWEST_KEV, 200.0, unit="keV")
    return Spectrum(np.array([e]), np.array([1.0]))


def material_mu_per_mm(material: str, energies_kev) -> np.ndarray:
    """Linear attenuation coefficients (mm⁻¹) of a material at the given energies.

    Parameters
    ----------
    material : {"water", "bone", "aluminium", "titanium", "steel"}
        ``bone`` is ICRU-44 cortical bone (1.92 g/cm³).
    energies_kev : float or array_like
        keV, 10-200.

    Returns
    -------
    float64 ndarray of ``energies_kev``'s shape
    """
    if material not in MATERIALS:
        raise InputError(f"must be one of {', '.join(MATERIALS)}, got {material!r}", "material")
    e = np.asarray(energies_kev, dtype=np.float64)
    if material == "water":
        f = mu_water_per_mm
    elif material == "bone":
        f = mu_cortical_bone_per_mm
    elif material == "aluminium":
        def f(x):
            return loglog_mu_rho(x, _ALUMINIUM_MU_RHO) * _ALUMINIUM_DENSITY_G_CM3 / 10.0
    else:
        def f(x):
            return metal_mu_per_mm(material, x)
    return np.vectorize(f, otypes=[np.float64])(e)


def polychromatic_transmission(spectrum: Spectrum, path_lengths_mm: dict) -> np.ndarray:
    """Primary transmission ``sum_E w_E exp(-sum_m mu_m(E) L_m)`` (module doc).

    Parameters
    ----------
    spectrum : Spectrum
    path_lengths_mm : dict
        Material name (:data:`MATERIALS`) -> path length array (mm, any one shape,
        broadcastable), e.g. ``{"water": L_w, "bone": L_b, "steel": L_s}``.

    Returns
    -------
    float32 ndarray
        Transmission 0-1 (the detected share of the unattenuated signal).
    """
    if not isinstance(spectrum, Spectrum):
        raise InputError(f"expected a Spectrum, got {type(spectrum).__name__}", "spectrum")
    if not isinstance(path_lengths_mm, dict) or not path_lengths_mm:
        raise InputError("must be a non-empty dict material -> path length (mm)", "path_lengths_mm")
    lengths = {m: np.asarray(a, dtype=np.float32) for m, a in path_lengths_mm.items()}
    mus = {m: material_mu_per_mm(m, spectrum.energies_kev) for m in lengths}
    shape = np.broadcast_shapes(*(a.shape for a in lengths.values()))
    out = np.zeros(shape, np.float32)
    for i, w in enumerate(spectrum.weights):
        mu_l = sum(np.float32(mus[m][i]) * a for m, a in lengths.items())
        out += np.float32(w) * np.exp(-mu_l)
    return out


def hu_to_water_bone(hu: np.ndarray, breakpoint_hu: float, bone_scale_hu: float) -> tuple[np.ndarray, np.ndarray]:
    """Split HU into water-equivalent and cortical-bone-equivalent volume fractions.

    Below ``breakpoint_hu`` a voxel is water at density ``1 + HU / 1000`` (0 for air).
    Above it a voxel is a mixture: a cortical-bone fraction
    ``f = (HU - breakpoint_hu) / bone_scale_hu`` and the rest tissue at the breakpoint's
    density, ``(1 - f) * (1 + breakpoint_hu / 1000)`` (0 once ``f >= 1``; metal above
    the bone range keeps ``f > 1``).

    Parameters
    ----------
    hu : (Z, Y, X) array, HU
    breakpoint_hu : float
        HU where bone starts (-200 to 500).
    bone_scale_hu : float
        HU above the breakpoint per unit of cortical-bone fraction (500-4000).

    Returns
    -------
    water, bone : (Z, Y, X) float32 ndarrays
        Volume fractions (>= 0): line integrals of them are path lengths in mm of water
        and of cortical bone.
    """
    bp = check_number(breakpoint_hu, "bone_hu_breakpoint", -200.0, 500.0, unit="HU")
    scale = check_number(bone_scale_hu, "bone_scale", 500.0, 4000.0, unit="HU")
    h = np.asarray(hu, dtype=np.float32)
    bone = np.clip((h - np.float32(bp)) / np.float32(scale), 0.0, None).astype(np.float32)
    water = np.where(h <= bp, np.clip(1.0 + h / np.float32(1000.0), 0.0, None),
                     np.clip(1.0 - bone, 0.0, None) * np.float32(1.0 + bp / 1000.0)).astype(np.float32)
    return water, bone
