"""Tests for HU -> linear attenuation (or_assist.core.ct.attenuation)."""

from __future__ import annotations

import numpy as np
import pytest

from or_assist.core.ct.load import load_ct
from or_assist.core.ct.attenuation import hu_to_attenuation, mu_cortical_bone_per_mm, mu_water_per_mm
from or_assist.errors import InputError


# --------------------------------------------------------------------------- attenuation


def test_nist_values_at_table_energies():
    assert mu_water_per_mm(60) == pytest.approx(0.02059, rel=1e-6)
    assert mu_water_per_mm(40) == pytest.approx(0.02683, rel=1e-6)
    assert mu_cortical_bone_per_mm(60) == pytest.approx(0.3148 * 1.92 / 10, rel=1e-6)
    # log-log interpolation lies between the neighbours and below the straight chord
    mid = mu_water_per_mm(70)
    assert mu_water_per_mm(80) < mid < mu_water_per_mm(60)
    assert mid < (mu_water_per_mm(60) + mu_water_per_mm(80)) / 2
    with pytest.raises(InputError, match="energy_kev"):
        mu_water_per_mm(5)


@pytest.mark.parametrize("energy_kev", [40.0, 60.0, 80.0])
def test_hu_to_attenuation_piecewise_model(energy_kev):
    mu_w, mu_b = mu_water_per_mm(energy_kev), mu_cortical_bone_per_mm(energy_kev)
    hu = np.array([-3024, -1000, -500, 0, 50, 100, 1900, 1000], np.float32)
    mu = hu_to_attenuation(hu, energy_kev)
    assert mu.dtype == np.float32 and mu.shape == hu.shape
    np.testing.assert_allclose(mu[:6], [0, 0, mu_w / 2, mu_w, 1.05 * mu_w, 1.1 * mu_w], rtol=1e-5, atol=1e-8)
    assert mu[6] == pytest.approx(mu_b, rel=1e-5)  # cortical bone gets bone's attenuation
    assert mu[7] == pytest.approx(1.1 * mu_w + (mu_b - 1.1 * mu_w) * 900 / 1800, rel=1e-5)
    dense = hu_to_attenuation(np.linspace(-1200, 3500, 4701, dtype=np.float32), energy_kev)
    assert np.all(np.diff(dense) >= -1e-9)  # monotonic, continuous at the threshold
    assert np.max(np.abs(np.diff(dense))) < 1e-4


def test_bone_contrast_grows_at_low_energy():
    ratio = {e: hu_to_attenuation(np.float32([1900.0]), e)[0] / mu_water_per_mm(e) for e in (40.0, 60.0, 80.0)}
    assert ratio[40.0] > 4.5 > ratio[60.0] > 2.8 > ratio[80.0]  # water scaling alone would give 2.9


def test_hu_to_attenuation_bad_arguments():
    with pytest.raises(InputError, match="energy_kev"):
        hu_to_attenuation(np.zeros(3), energy_kev=500)
    with pytest.raises(InputError, match="bone_hu"):
        hu_to_attenuation(np.zeros(3), bone_hu=50.0)
    with pytest.raises(InputError, match="numeric"):
        hu_to_attenuation(np.array(["a", "b"]))


def test_hu_to_attenuation_speed(real_ct_path):
    """The whole real CT volume converts voxel by voxel as the piecewise model says (how
    fast is for benchmarks)."""
    hu = load_ct(real_ct_path).hu
    mu = hu_to_attenuation(hu, 60.0)
    assert mu.dtype == np.float32 and mu.shape == hu.shape and np.all(mu >= 0)
    mu_w, mu_b = mu_water_per_mm(60.0), mu_cortical_bone_per_mm(60.0)
    h = hu.astype(np.float64)
    expected = np.where(h <= 100.0, mu_w * (1.0 + h / 1000.0), 1.1 * mu_w + (mu_b - 1.1 * mu_w) * (h - 100.0) / 1800.0)
    np.testing.assert_allclose(mu, np.clip(expected, 0.0, None), rtol=1e-5, atol=1e-8)
