"""Display model: line integrals -> C-arm-like image (polarity, window, gamma, modes)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from or_assist.errors import InputError
from or_assist.render.display import (CARM_DISPLAY, DisplaySettings, auto_window, compress_range, metering_mask,
                                      to_display)

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
    plain = to_display(p, DisplaySettings(), mask=mask)
    assert np.array_equal(plain, to_display(p, DisplaySettings(window=auto_window(p, mask))))


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
    ({"range_compression": 1.5}, "range_compression"),
    ({"range_compression": -0.1}, "range_compression"),
    ({"compression_sigma_fraction": 0.0}, "compression_sigma_fraction"),
    ({"metering_fraction": 0.0}, "metering_fraction"),
    ({"metering_fraction": float("nan")}, "metering_fraction"),
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


# --------------------------------------------------------------------------- the C-arm look


def _thick_body_with_bone(n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """A body 3 to 7 nepers thick from left to right (air beyond its right edge) with
    small bone blobs of 0.3 nepers everywhere; returns ``p`` and the bone mask."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    p = 3.0 + 4.0 * xx / n
    p[:, int(0.9 * n):] = 0.0                                      # air behind the body
    bone = (((xx % 32) - 16) ** 2 + ((yy % 32) - 16) ** 2 < 36) & (xx < 0.9 * n)
    return (p + 0.3 * bone).astype(np.float32), bone


def test_carm_look_is_the_default_and_keeps_bone_contrast_across_thickness():
    """Without range compression the window spans air to the thickest body and a 0.3
    neper bone gets a few grey levels; the C-arm look (the default) gives it tens of grey
    levels wherever it lies, bone darker than the soft tissue beside it."""
    p, bone = _thick_body_with_bone()
    assert np.array_equal(to_display(p), to_display(p, CARM_DISPLAY))

    def local_contrast(img):   # soft minus bone grey, per 32 px block, in the body's inner part
        img = img.astype(float)
        out = []
        for x in range(32, 192, 32):
            for y in range(32, 224, 32):
                blk, b = img[y:y + 32, x:x + 32], bone[y:y + 32, x:x + 32]
                out.append(blk[~b].mean() - blk[b].mean())
        return np.array(out)

    plain, carm = local_contrast(to_display(p, DisplaySettings())), local_contrast(to_display(p))
    assert plain.max() < 15 and carm.min() > 30


def test_compress_range_keeps_detail_and_mean():
    p, bone = _thick_body_with_bone(256)        # low-pass sigma 10 px, bone blobs of radius 6 px
    for fraction in (0.0, 0.5, 1.0):
        c = compress_range(p, fraction, 0.04)
        assert c.dtype == np.float32 and c.shape == p.shape
        assert float(c.mean()) == pytest.approx(float(p.mean()), abs=0.05)
        # a bone blob in the body's inner part keeps most of its 0.3 neper step
        b = bone[96:128, 64:96]
        step = [a[96:128, 64:96][b].mean() - a[96:128, 64:96][~b].mean() for a in (c, p)]
        assert 0.7 < step[0] / step[1] < 1.01
    assert np.array_equal(compress_range(p, 0.0), p)
    # the broad gradient shrinks by the fraction (away from the air edge)
    g = compress_range(p, 0.8, 0.04)
    assert (g[112, 176] - g[112, 48]) == pytest.approx(0.2 * (p[112, 176] - p[112, 48]), abs=0.1)
    tiny = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)          # low-pass under half a pixel: nothing
    assert np.array_equal(compress_range(tiny, 0.8), tiny)
    with pytest.raises(InputError, match="^range_compression:"):
        compress_range(p, 2.0)
    with pytest.raises(InputError, match="^mask:"):
        compress_range(p, 0.5, mask=np.ones((3, 3), bool))


def test_metering_disc_and_mask():
    m = metering_mask((100, 200), 0.6)
    assert m[50, 100] and not m[50, 60] and not m[5, 100]
    assert m.sum() == pytest.approx(math.pi * 30 ** 2, rel=0.03)
    assert metering_mask((10, 10), 1.0).all()
    field = np.zeros((100, 200), bool)
    field[:, :40] = True                                            # a field outside the disc: all of it
    assert np.array_equal(metering_mask((100, 200), 0.6, field), field)
    field[40:60, 90:110] = True
    assert metering_mask((100, 200), 0.6, field).sum() == 400
    with pytest.raises(InputError, match="^metering_fraction:"):
        metering_mask((10, 10), 0.0)


def test_metal_is_black_and_leaves_the_window_alone():
    p, _ = _thick_body_with_bone(128)
    metal = np.zeros_like(p)
    metal[60:68, 40:90] = 6.0                                       # an implant
    with_metal = to_display(p, metal=metal)
    anatomy = to_display(p)
    assert with_metal[60:68, 40:90].max() == 0                      # saturates black
    outside = np.ones(p.shape, bool)
    outside[60:68, 40:90] = False
    assert np.array_equal(with_metal[outside], anatomy[outside])     # no halo, same window
    # the plain chain with the metal in the image would have it set the window's dark end
    assert to_display(p + metal, DisplaySettings())[outside].min() > 0
    with pytest.raises(InputError, match="^metal:"):
        to_display(p, metal=np.zeros((3, 3), np.float32))
    with pytest.raises(InputError, match="^line_integrals: contains NaN"):
        to_display(p, metal=np.full(p.shape, np.nan, np.float32))


def test_carm_speed_1024():
    """The C-arm look on a 1024 x 1024 frame stays fast (low-pass on a binned copy)."""
    import time

    p = np.random.default_rng(0).uniform(0.0, 5.0, (1024, 1024)).astype(np.float32)
    to_display(p)
    t = time.perf_counter()
    for _ in range(3):
        out = to_display(p)
    assert out.shape == p.shape and (time.perf_counter() - t) / 3 < 0.25
