"""Display model: line integrals -> C-arm-like image (polarity, window, gamma, modes)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from or_assist.errors import InputError
from or_assist.render.display import DisplaySettings, auto_window, to_display

RAMP = np.linspace(0.0, 6.0, 64, dtype=np.float32).reshape(8, 8)   # more attenuation to the end


def test_bone_dark_by_default_and_monotone():
    for settings in (DisplaySettings(window=(0.0, 6.0)), DisplaySettings(),
                     DisplaySettings(mode="transmitted", window=(math.exp(-6.0), 1.0)),
                     DisplaySettings(gamma=0.5, window=(0.0, 6.0)),
                     DisplaySettings(gamma=2.0, output="float32")):
        out = to_display(RAMP, settings).ravel().astype(float)
        assert np.all(np.diff(out) <= 0), settings                 # more attenuation -> darker
        assert out[0] > out[-1]
    img = to_display(RAMP, DisplaySettings(window=(0.0, 6.0)))
    assert img.dtype == np.uint8 and img[0, 0] == 255 and img[-1, -1] == 0   # air white, dense black


def test_log_mode_values_and_window_clip():
    out = to_display(RAMP, DisplaySettings(window=(1.0, 4.0), output="float32"))
    assert out.dtype == np.float32
    expected = 1.0 - np.clip((RAMP - 1.0) / 3.0, 0.0, 1.0)
    assert np.allclose(out, expected, atol=1e-6)
    assert np.all(out[RAMP <= 1.0] == 1.0) and np.all(out[RAMP >= 4.0] == 0.0)
    u8 = to_display(RAMP, DisplaySettings(window=(1.0, 4.0)))
    assert u8.min() == 0 and u8.max() == 255
    assert np.abs(u8.astype(int) - np.round(255 * expected)).max() <= 1


def test_transmitted_mode_is_linear_in_intensity():
    s = DisplaySettings(mode="transmitted", i0=1000.0, window=(100.0, 900.0), output="float32")
    expected = np.clip((1000.0 * np.exp(-RAMP.astype(np.float64)) - 100.0) / 800.0, 0.0, 1.0)
    assert np.allclose(to_display(RAMP, s), expected, atol=1e-5)


def test_invert_and_bone_dark_flip_polarity():
    base = to_display(RAMP, DisplaySettings(window=(0.5, 5.0), output="float32"))
    inverted = to_display(RAMP, DisplaySettings(window=(0.5, 5.0), output="float32", invert=True))
    bone_white = to_display(RAMP, DisplaySettings(window=(0.5, 5.0), output="float32", bone_dark=False))
    assert np.allclose(inverted, 1.0 - base, atol=1e-6)
    assert np.array_equal(bone_white, inverted)
    both = to_display(RAMP, DisplaySettings(window=(0.5, 5.0), output="float32", bone_dark=False, invert=True))
    assert np.array_equal(both, base)
    for mode, window in (("log", (0.0, 6.0)), ("transmitted", (0.0, 1.0))):
        out = to_display(RAMP, DisplaySettings(mode=mode, window=window, invert=True)).ravel()
        assert np.all(np.diff(out.astype(int)) >= 0)                # inverted: dense is bright


def test_gamma_acts_on_brightness():
    lin = to_display(RAMP, DisplaySettings(window=(0.0, 6.0), output="float32"))
    for gamma in (0.5, 2.2):
        f = to_display(RAMP, DisplaySettings(window=(0.0, 6.0), output="float32", gamma=gamma))
        assert np.allclose(f, lin ** gamma, atol=1e-6)
        u8 = to_display(RAMP, DisplaySettings(window=(0.0, 6.0), gamma=gamma))
        assert np.abs(u8.astype(int) - np.round(255 * lin ** gamma)).max() <= 1
    assert to_display(RAMP, DisplaySettings(window=(0.0, 6.0), gamma=0.5))[4, 4] > \
        to_display(RAMP, DisplaySettings(window=(0.0, 6.0)))[4, 4]   # gamma < 1 lifts the dark bone


def test_auto_window_from_percentiles_and_mask():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.0, 4.0, size=(300, 400)).astype(np.float32)
    lo, hi = auto_window(p)
    assert lo == pytest.approx(0.04, abs=0.03) and hi == pytest.approx(3.98, abs=0.03)
    mask = np.zeros(p.shape, bool)
    mask[:, :200] = True
    p[:, 200:] = 50.0                                                # collimator / outside the field
    assert auto_window(p, mask)[1] < 4.0 and auto_window(p)[1] == 50.0
    t_lo, t_hi = auto_window(p, mask, (5.0, 95.0), mode="transmitted", i0=10.0)
    l_lo, l_hi = auto_window(p, mask, (5.0, 95.0))
    assert (t_lo, t_hi) == pytest.approx((10.0 * math.exp(-l_hi), 10.0 * math.exp(-l_lo)))
    flat = np.full((4, 4), 2.0, np.float32)
    lo, hi = auto_window(flat)
    assert lo == 2.0 and hi > lo
    assert np.all(to_display(flat) == 255)
    default = to_display(p, mask=mask)
    assert np.array_equal(default, to_display(p, DisplaySettings(window=auto_window(p, mask))))


def test_speed_1024():
    """A full 1024 x 1024 frame through both uint8 paths (linear, and the gamma look-up
    table) is the float32 result within one grey level (how fast is for benchmarks)."""
    p = np.random.default_rng(0).uniform(0.0, 5.0, (1024, 1024)).astype(np.float32)
    for settings in (DisplaySettings(window=(0.0, 5.0)), DisplaySettings(gamma=0.7)):
        out = to_display(p, settings)
        ref = to_display(p, replace(settings, output="float32"))
        assert out.dtype == np.uint8 and out.shape == p.shape
        assert np.abs(out.astype(int) - np.round(255 * ref.astype(np.float64))).max() <= 1
        assert out.min() <= 1 and out.max() >= 254         # the window spans the whole grey range


@pytest.mark.parametrize("kwargs, field", [
    ({"window": (2.0, 1.0)}, "window"),
    ({"window": (1.0, 1.0)}, "window"),
    ({"window": (0.0, float("nan"))}, "window"),
    ({"window": 3.0}, "window"),
    ({"gamma": 0.0}, "gamma"),
    ({"gamma": -1.0}, "gamma"),
    ({"mode": "linear"}, "mode"),
    ({"i0": 0.0}, "i0"),
    ({"percentiles": (99.0, 1.0)}, "percentiles"),
    ({"percentiles": (0.0, 101.0)}, "percentiles"),
    ({"output": "uint16"}, "output"),
    ({"bone_dark": "yes"}, "bone_dark"),
    ({"invert": 1}, "invert"),
])
def test_bad_settings_name_the_field(kwargs, field):
    with pytest.raises(InputError, match=f"^{field}:"):
        DisplaySettings(**kwargs)


def test_bad_images():
    with pytest.raises(InputError, match="line_integrals"):
        to_display(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(InputError, match="line_integrals: contains NaN"):
        to_display(np.array([[0.0, np.nan]], np.float32))
    with pytest.raises(InputError, match="line_integrals"):
        to_display([[0.0, 1.0]])
    with pytest.raises(InputError, match="mask"):
        to_display(RAMP, mask=np.ones((3, 3), bool))
    with pytest.raises(InputError, match="mask: selects no pixel"):
        auto_window(RAMP, np.zeros(RAMP.shape, bool))
    with pytest.raises(InputError, match="settings"):
        to_display(RAMP, {"mode": "log"})
