"""The guide pin: validation, construction from tip and direction, and its mesh."""

from __future__ import annotations

import math

import numpy as np
import pytest

from or_assist.core.instruments import DEFAULT_PIN_DIAMETER_MM, GuidePin, guide_pin_mesh
from or_assist.core.catalogue import load_catalogue
from or_assist.errors import InputError
from or_assist.render.implants import convex_halfspaces


def mesh_volume(v, f) -> float:
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def test_default_diameter_is_the_catalogues():
    assert DEFAULT_PIN_DIAMETER_MM == load_catalogue().guide_pin_diameter_mm == 3.2
    assert GuidePin([0, 0, 0], [0, 0, 10]).diameter_mm == 3.2


def test_from_tip_direction():
    pin = GuidePin.from_tip_direction([1.0, 2.0, 3.0], [0.0, 0.0, -2.0], 40.0, id="K1")
    assert np.allclose(pin.back_lps_mm, [1.0, 2.0, 43.0])
    assert np.allclose(pin.axis_unit, [0.0, 0.0, -1.0])
    assert pin.length_mm == pytest.approx(40.0) and pin.radius_mm == 1.6 and pin.id == "K1"
    assert "K1" in repr(pin)


@pytest.mark.parametrize("cone", [0.0, 5.0])
def test_mesh_is_closed_convex_and_has_the_wire_volume(cone):
    pin = GuidePin.from_tip_direction([10.0, -5.0, 2.0], [-1.0, 0.3, 0.2], 100.0, tip_cone_mm=cone)
    v, f = guide_pin_mesh(pin, 24)
    assert v.shape == (48 + (cone > 0), 3) and f.dtype == np.int32
    n, d = convex_halfspaces(v, f)                        # raises unless closed, convex, outward
    assert len(n) == 24 + 1 + (24 if cone else 1)
    expected = math.pi * 1.6 ** 2 * (100.0 - cone + cone / 3)   # area-equivalent polygon
    assert mesh_volume(v, f) == pytest.approx(expected, rel=1e-9)
    tip_end = v[np.argmax(v @ pin.axis_unit)]
    if cone:
        assert np.allclose(tip_end, pin.tip_lps_mm)
    assert np.allclose(v @ pin.axis_unit, np.clip(v @ pin.axis_unit, pin.back_lps_mm @ pin.axis_unit,
                                                  pin.tip_lps_mm @ pin.axis_unit))


def test_bad_pins():
    with pytest.raises(InputError, match="back_lps_mm: tip and back end are the same point"):
        GuidePin([1, 2, 3], [1, 2, 3])
    with pytest.raises(InputError, match="tip_lps_mm"):
        GuidePin([1, 2], [1, 2, 3])
    with pytest.raises(InputError, match="back_lps_mm"):
        GuidePin([1, 2, 3], [np.nan, 2, 3])
    with pytest.raises(InputError, match="diameter_mm"):
        GuidePin([0, 0, 0], [0, 0, 10], diameter_mm=0.0)
    with pytest.raises(InputError, match="tip_cone_mm"):
        GuidePin([0, 0, 0], [0, 0, 10], tip_cone_mm=11.0)
    with pytest.raises(InputError, match="tip_cone_mm"):
        GuidePin([0, 0, 0], [0, 0, 10], tip_cone_mm=-1.0)
    with pytest.raises(InputError, match="direction_lps"):
        GuidePin.from_tip_direction([0, 0, 0], [0, 0, 0], 10.0)
    with pytest.raises(InputError, match="length_mm"):
        GuidePin.from_tip_direction([0, 0, 0], [0, 0, 1], -10.0)
    with pytest.raises(InputError, match="n_facets"):
        guide_pin_mesh(GuidePin([0, 0, 0], [0, 0, 10]), 2)
    with pytest.raises(InputError, match="pin"):
        guide_pin_mesh("pin")
