"""Hounsfield units to linear X-ray attenuation (mm⁻¹) at a nominal photon energy.

A CT measures attenuation at the scanner's own effective energy and reports it relative
to water (HU). A fluoroscopy simulation needs the linear attenuation coefficient μ at the
C-arm's (lower) effective energy. Water-like tissue scales with water, but bone does not:
calcium's photoelectric absorption grows much faster towards low energies, so the same
HU means relatively more attenuation for bone at 50 keV than at the CT's ~70 keV. The
conversion is therefore piecewise linear ("bilinear scaling", as used for CT-based
attenuation correction: Kinahan et al., Med Phys 25(10):2046, 1998; Carney et al., Med
Phys 33(4):976, 2006):

- HU ≤ ``bone_threshold_hu`` (air, lung, fat, soft tissue, water):
  ``μ = μ_water(E) · (1 + HU / 1000)``;
- HU > ``bone_threshold_hu``: a line continuous at the threshold that reaches cortical
  bone's attenuation at ``bone_hu``:
  ``μ = μ_t + (HU − t) · (μ_bone(E) − μ_t) / (bone_hu − t)``, ``t = bone_threshold_hu``,
  ``μ_t = μ_water(E) · (1 + t / 1000)``;
- μ is clipped to ≥ 0 (air and padding below −1000 HU attenuate nothing).

Mass attenuation coefficients μ/ρ (cm²/g, total with coherent scattering) of "Water,
Liquid" (ρ = 1.00 g/cm³) and "Bone, Cortical (ICRU-44)" (ρ = 1.92 g/cm³) from NIST
Standard Reference Database 126 (Hubbell & Seltzer, X-Ray Mass Attenuation Coefficients,
NISTIR 5632, Table 4; the same values XCOM gives), interpolated log-log between the
tabulated energies. Metal above the bone range follows the bone line (CT saturates on
metal, so its true attenuation cannot be recovered from HU anyway).
"""

from __future__ import annotations

import math

import numpy as np

from or_assist.errors import InputError

__all__ = [
    "ENERGY_RANGE_KEV",
    "mu_water_per_mm",
    "mu_cortical_bone_per_mm",
    "hu_to_attenuation",
    "loglog_mu_rho",
]

# NIST SRD 126, Table 4: energy (keV) and mu/rho (cm^2/g).
_TABLE_KEV = np.array([10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0, 100.0, 150.0, 200.0])
_WATER_MU_RHO = np.array(
    [5.329, 1.673, 0.8096, 0.3756, 0.2683, 0.2269, 0.2059, 0.1837, 0.1707, 0.1505, 0.1370]
)
_BONE_MU_RHO = np.array(
    [28.51, 9.032, 4.001, 1.331, 0.6655, 0.4242, 0.3148, 0.2229, 0.1855, 0.1480, 0.1309]
)
_WATER_DENSITY_G_CM3 = 1.00
_BONE_DENSITY_G_CM3 = 1.92

#: Photon energies (keV) the tables cover; energies outside are rejected.
ENERGY_RANGE_KEV = (float(_TABLE_KEV[0]), float(_TABLE_KEV[-1]))


def _check_energy(energy_kev: float) -> float:
    try:
        e = float(energy_kev)
    except (TypeError, ValueError):
        raise InputError(f"expected a number in keV, got {energy_kev!r}", "energy_kev") from None
    lo, hi = ENERGY_RANGE_KEV
    if not (lo <= e <= hi):
        raise InputError(f"{e:g} keV is outside the tabulated range {lo:g}-{hi:g} keV", "energy_kev")
    return e


def loglog_mu_rho(energy_kev: float, mu_rho: np.ndarray) -> float:
    """Mass attenuation (cm^2/g) at ``energy_kev``, log-log interpolated in a table given
    at the module's NIST energies (``mu_rho`` has one value per tabulated energy)."""
    e = _check_energy(energy_kev)
    return float(np.exp(np.interp(math.log(e), np.log(_TABLE_KEV), np.log(mu_rho))))


def mu_water_per_mm(energy_kev: float) -> float:
    """Linear attenuation coefficient of liquid water.

    Parameters
    ----------
    energy_kev : float
        Photon energy in keV, within :data:`ENERGY_RANGE_KEV`.

    Returns
    -------
    float
        μ in mm⁻¹ (e.g. 0.02059 at 60 keV).
    """
    return loglog_mu_rho(energy_kev, _WATER_MU_RHO) * _WATER_DENSITY_G_CM3 / 10.0


def mu_cortical_bone_per_mm(energy_kev: float) -> float:
    """Linear attenuation coefficient of cortical bone (ICRU-44, 1.92 g/cm³).

    Parameters
    ----------
    energy_kev : float
        Photon energy in keV, within :data:`ENERGY_RANGE_KEV`.

    Returns
    -------
    float
        μ in mm⁻¹ (e.g. 0.0604 at 60 keV).
    """
    return loglog_mu_rho(energy_kev, _BONE_MU_RHO) * _BONE_DENSITY_G_CM3 / 10.0


def hu_to_attenuation(
    hu,
    energy_kev: float = 60.0,
    *,
    bone_threshold_hu: float = 100.0,
    bone_hu: float = 1900.0,
) -> np.ndarray:
    """Convert Hounsfield units to linear attenuation at a nominal photon energy.

    Piecewise linear model described in the module docstring: water scaling up to
    ``bone_threshold_hu``, then a line through cortical bone's attenuation at ``bone_hu``,
    clipped at 0.

    Parameters
    ----------
    hu : array_like
        Hounsfield units, any shape (e.g. a (Z, Y, X) CT volume).
    energy_kev : float, default 60
        Effective photon energy of the simulated beam, keV (10-200).
    bone_threshold_hu : float, default 100
        Above this HU a voxel is treated as a water/bone mixture rather than soft tissue.
    bone_hu : float, default 1900
        HU that dense cortical bone (1.92 g/cm³) has in the CT; it gets
        ``mu_cortical_bone_per_mm(energy_kev)``.

    Returns
    -------
    numpy.ndarray
        Same shape as ``hu``, float32, mm⁻¹, ≥ 0 (NaN stays NaN).

    Raises
    ------
    InputError
        Non-numeric ``hu``, energy outside the table, or ``bone_hu <= bone_threshold_hu``.
    """
    if isinstance(hu, np.ndarray) and not np.issubdtype(hu.dtype, np.number):
        raise InputError(f"expected a numeric array, got dtype {hu.dtype}", "hu")
    try:
        hu32 = np.asarray(hu, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError(f"expected a numeric array of HU, got {type(hu).__name__}", "hu") from None
    threshold = float(bone_threshold_hu)
    if not (math.isfinite(threshold) and math.isfinite(float(bone_hu)) and float(bone_hu) > threshold):
        raise InputError(
            f"bone_hu ({bone_hu}) must be finite and above bone_threshold_hu ({bone_threshold_hu})",
            "bone_hu",
        )
    mu_w = mu_water_per_mm(energy_kev)
    mu_b = mu_cortical_bone_per_mm(energy_kev)
    soft_slope = mu_w / 1000.0
    mu_t = mu_w * (1.0 + threshold / 1000.0)
    bone_slope = (mu_b - mu_t) / (float(bone_hu) - threshold)
    bone_offset = mu_t - bone_slope * threshold

    # Both lines meet at the threshold, so the piecewise function is the larger of the two
    # when bone is the steeper line (low energies) and the smaller one otherwise.
    out = np.multiply(hu32, np.float32(soft_slope), dtype=np.float32)
    out += np.float32(mu_w)
    bone = np.multiply(hu32, np.float32(bone_slope), dtype=np.float32)
    bone += np.float32(bone_offset)
    if bone_slope >= soft_slope:
        np.maximum(out, bone, out=out)
    else:
        np.minimum(out, bone, out=out)
    np.maximum(out, np.float32(0.0), out=out)
    return out
