"""The ends of a verified pin line (:mod:`or_assist.guidance.pin`, step 5): the walk along
the pin to where it really ends, which end is the tip (also for a pin seen end on), what the
end's shape adds to the seen end, and the detection's confidence. Internal, like
:mod:`or_assist.guidance._pin_profile`, whose profile kernels it uses.
"""

from __future__ import annotations

import math

import numpy as np

from or_assist.guidance._pin_profile import _crossing, _line_range, analyse_profiles, sample_profiles

__all__: list[str] = []

# the confidence (finish_detection): a steel pin is the most contrasted, straightest line
# in a shot. Calibrated on the calibration seeds (demo shots, real-CT seeds 1000-1011, the
# demo's pin-free shots at registration-like pose errors): pins reach contrast 0.47-1.0
# and a line rms of 0.006-0.023 pin widths, the bone edges that pass verification 0.09-0.6
# and 0.026-0.19; with these scales the edges stay below 0.56 and the pins above 0.63
_FULL_CONTRAST = 0.45     # share of the field's range at which the contrast factor is 1
_STRAIGHT_SIGMA = 0.03    # line rms, in pin widths, at which the straightness factor is exp(-1/2)
_WIDTH_SIGMA = 0.2        # width error (beyond 10 %) at which the width factor is exp(-1/2)
# the walk along the pin to its ends (walk_end): a sample continues the pin's metal when
# its centre is as dark as the pin's own shaft where last seen, within _NOISE_SIGMAS times
# the shaft's centre noise, but never looser than _DARK_PLATEAU nor tighter than
# _MIN_DARK_TOL of the plateau (a saturated shaft has no noise; a bone band continuing the
# pin's line, demo seed 5001, was 0.05 plateau lighter than its saturated shaft); a
# stretch as dark as the pin without showing it, longer than _MAX_DARK_WIDTHS pin widths,
# hides the pin (occluded)
_DARK_PLATEAU = 0.25
_MIN_DARK_TOL = 0.03
_NOISE_SIGMAS = 4.0
_MAX_DARK_WIDTHS = 4.0
# excluded pixels (burnt-in text) on the pin's centre line up to this many pin widths long
# are looked past; a longer stretch is the field's border for the walk
_MAX_PATCH_WIDTHS = 3.0
#: Below this foreshortening (projected over side-on length) the planned axis is seen
#: nearly end on: the tip's offset is its distance from the projected axis segment, the
#: angle in the image is no aim, and the pin's tip end is told by its perspective.
END_ON_FORESHORTENING = 0.3
# end on, the tip end is the one the pin widens towards (width_trend): a relative widening
# of at least _MIN_WIDTH_TREND over the segment (end-on real-CT laterals, calibration
# seeds: 0.12-0.27, the right end every time)
_MIN_WIDTH_TREND = 0.06


def _pin_edges(vals: np.ndarray, ok: np.ndarray, offsets: np.ndarray, w: float, w_meas: float,
               plateau: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cross-profile: centre value, whether the centre is usable, whether it shows the pin.

    A profile shows the pin when, on at least one side whose pixels are usable, the value
    falls by at least half the pin's plateau contrast and the half-way crossing lies where
    the pin's edge is (half the measured width from the line, within a quarter of the
    expected width). One side suffices: a pin lying along an implant or an edge of bone
    has only one free edge; a side on excluded pixels (burnt-in text) is left out.
    """
    core = np.abs(offsets) <= 0.25 * w
    c = vals[:, core].mean(axis=1)
    good = ok[:, core].all(axis=1)
    shows = np.zeros(len(vals), bool)
    k0 = int(np.argmin(np.abs(offsets)))
    for sign, sl in ((-1.0, slice(k0, None, -1)), (1.0, slice(k0, None))):
        band = (sign * offsets >= 0.75 * w) & (sign * offsets <= 1.25 * w)
        side_ok = ok[:, band].all(axis=1)
        side = vals[:, band].mean(axis=1)
        drop = (c - side) >= 0.5 * plateau
        offs = offsets[sl]
        for i in np.flatnonzero(good & side_ok & drop & ~shows):
            x = _crossing(vals[i, sl], 0.5 * (c[i] + side[i]), offs)
            shows[i] = x is not None and abs(abs(x) - 0.5 * w_meas) <= 0.25 * w
    return c, good, shows


def walk_end(img, valid, p0, d, t_end: float, sign: float, w: float, plateau: float,
             width_measured_px: float, max_width_ratio: float) -> dict:
    """Follow the pin from one end of its verified run outwards to where it really ends.

    Along the line, a sample *shows the pin* when its cross-profile has the pin's
    two-sided signature (contrast at least a quarter of the plateau, a pin-wide band) or
    at least one of the pin's edges where it should be (:func:`_pin_edges`). Past the
    two-sided signature the pin's *metal* must continue: a sample counts only while its
    centre stays as dark as the pin's own shaft where it was last seen (within the
    shaft's noise, :func:`_shaft_level`), so a bone band continuing the pin's line, a
    little lighter than the pin, with one edge where the pin's would be, is not the pin.
    The walk goes on over samples that do not show the pin as long as their centre is
    that dark: a bone cortex or an instrument that crosses the pin darkens one side and
    breaks the signature for a while, but not the pin's own darkness. It stops where the
    centre falls below that for more than half a pin width, or at the field's border /
    an excluded region. The walk starts from the last sample of the verified run that
    shows the pin with its shaft's darkness.

    The pin counts as seen only where it shows for a few samples in a row, and a pin
    seen to its end only along one free edge (lying on a placed implant's edge, where the
    two cannot be told apart) has its end not seen.

    Returns a dict: ``t`` (the end along the line: the half-way crossing of the centre
    value between the pin and what lies beyond, searched from the last sample that showed
    the pin, or that last sample when the end was not seen), ``seen`` (the pin's end itself was seen), ``occluded`` (it
    disappears into something as dark as itself for more than a pin width: the end
    may lie anywhere inside it), ``at_border`` (the field's border or an excluded region
    comes first) and ``t_seen`` (the last sample showing the pin's signature).
    """
    offsets = np.arange(-1.5 * w, 1.5 * w + 1e-9, max(0.5, w / 10.0))
    step = max(0.5, w / 8.0)
    t_lo, t_hi = _line_range(p0, d, img.shape)
    t_far = t_hi if sign > 0 else t_lo
    n_back = int(math.ceil(2.0 * w / step))
    n_out = max(0, int(sign * (t_far - t_end) / step)) + 1
    ts = t_end + sign * step * np.arange(-n_back, n_out)
    vals, ok = sample_profiles(img, valid, p0, d, ts, offsets)
    val, good, shows = _pin_edges(vals, ok, offsets, w, width_measured_px, plateau)
    a = analyse_profiles(vals, ok, offsets, w)   # the two-sided signature, as on the verified run
    two = a["ok"] & (a["contrast"] >= 0.25 * plateau) & (a["width"] < max_width_ratio * w) & (a["width"] > 0.3 * w)
    shows |= two
    # the pin is seen where it shows for a sustained stretch (a few samples in a row), not
    # where noise or a bone edge beyond its end happens to pass for one sample
    n_sus = max(2, int(round(0.4 * w / step)))
    run = np.convolve(shows.astype(float), np.ones(n_sus), mode="full")[:len(shows)] >= n_sus - 0.5
    sustained = np.zeros_like(shows)
    for i in np.flatnonzero(run):
        sustained[i - n_sus + 1:i + 1] = True
    # the verified run's end; its gap bridging may have run onto a collinear bone line, so
    # the walk starts at the last sample that shows the pin with its shaft's darkness
    ref, tol = _shaft_level(val, sustained & two, n_back, plateau)
    k = n_back
    while k > 0 and not (sustained[k] and (two[k] or val[k] >= ref - tol)):
        k -= 1
    last_seen = k
    on_two = np.flatnonzero(sustained[:k + 1] & two[:k + 1])
    last_two = int(on_two[-1]) if len(on_two) else k
    recent = [ref]
    max_gap = max(1, int(round(0.5 * w / step)))
    max_dark = int(round(_MAX_DARK_WIDTHS * w / step))
    j, gap, reason, patch_end, last_on, streak = k, 0, "drop", -1, k, 0
    while j + 1 < len(ts):
        j += 1
        if not good[j]:
            nxt = j + 1
            while nxt < len(ts) and not good[nxt]:
                nxt += 1
            if nxt < len(ts) and (nxt - j) * step <= _MAX_PATCH_WIDTHS * w:
                j = patch_end = nxt - 1      # a small excluded patch (burnt-in text) on the pin: look past it
                streak = 0
                continue
            reason = "border"
            break
        # the pin's metal continues: its two-sided signature, or its centre as dark as its shaft
        metal = two[j] or val[j] >= ref - tol
        if shows[j] and metal:
            last_on, gap = j, 0
            streak += 1
            if streak >= n_sus or sustained[j] and two[j]:
                last_seen = j
                if two[j]:
                    last_two = j
                recent = (recent + [float(val[j])])[-max(3, n_back):]
                ref = float(np.median(recent))
        elif metal:
            last_on, gap, streak = j, 0, 0
            if j - last_seen > max_dark:
                reason = "dark"
                break
        else:
            gap += 1
            streak = 0
            if gap > max_gap:
                break
    else:
        reason = "border"      # the line leaves the image
    chain_end = last_on
    dark_after = (chain_end - last_seen) * step
    # the pin was last seen right before the border or an excluded patch: its end may lie beyond
    at_border = (reason == "border" and gap <= max_gap) or (patch_end >= 0 and chain_end <= patch_end + 1)
    # seen to the end only along one free edge (a pin lying on an implant's edge): the pin
    # and the implant cannot be told apart there, so neither can where the pin ends
    one_sided = (last_seen - last_two) * step > w
    occluded = (reason == "dark" or dark_after > w or one_sided) and not at_border
    if one_sided:
        last_seen = last_two
    if at_border or occluded:
        t = float(ts[last_seen]) if occluded else float(ts[chain_end])
        return {"t": t, "seen": False, "occluded": occluded, "at_border": at_border, "t_seen": float(ts[last_seen])}
    # the end: where the centre value falls half-way from the pin's to what lies beyond,
    # searched from the last sample that showed the pin
    lo = last_seen + max(1, n_back // 4)
    beyond = slice(min(len(ts) - 1, lo), min(len(ts), lo + max(2, n_back // 2)))
    bg = float(np.median(val[beyond])) if lo < len(ts) else float(val[-1])
    half = 0.5 * (ref + bg)
    i = last_seen + 1
    while i < len(ts) and val[i] >= half:
        i += 1
    t = float(ts[min(i, len(ts) - 1)])
    if i < len(ts) and val[i - 1] > val[i]:
        f = (val[i - 1] - half) / (val[i - 1] - val[i])
        t = float(ts[i - 1] + sign * step * f)
    return {"t": t, "seen": True, "occluded": False, "at_border": False, "t_seen": float(ts[last_seen])}


def _shaft_level(val: np.ndarray, pin_like: np.ndarray, n_back: int, plateau: float) -> tuple[float, float]:
    """The shaft's centre value near the end and the tolerance below it that still counts as
    the pin's metal: from the samples of the last two pin widths before the verified run's
    end that show the pin's two-sided signature (all of them when none does)."""
    idx = np.flatnonzero(pin_like[:n_back + 1])
    if len(idx) < 2:
        idx = np.arange(n_back + 1)
    v = val[idx]
    noise = 1.4826 * float(np.median(np.abs(np.diff(v)))) / math.sqrt(2.0) if len(v) > 2 else 0.0
    tol = float(np.clip(_NOISE_SIGMAS * noise, _MIN_DARK_TOL * plateau, _DARK_PLATEAU * plateau))
    return float(np.median(v)), tol


def width_trend(img, valid, p0, d, t_a: float, t_b: float, w: float) -> int:
    """+1 when the band widens from end ``a`` to end ``b`` by at least ``_MIN_WIDTH_TREND``
    of its width over the segment's inner 70 %, -1 when it narrows, 0 when unclear."""
    length = t_b - t_a
    if length < 2.0 * w:
        return 0
    ts = np.linspace(t_a + 0.15 * length, t_b - 0.15 * length, 15)
    offsets = np.arange(-1.5 * w, 1.5 * w + 1e-9, max(0.5, w / 10.0))
    vals, ok = sample_profiles(img, valid, p0, d, ts, offsets)
    a = analyse_profiles(vals, ok, offsets, w)
    keep = a["ok"] & np.isfinite(a["width"]) & (a["width"] > 0.3 * w) & (a["width"] < 2.0 * w)
    if keep.sum() < 8:
        return 0
    slope = np.polyfit((ts[keep] - ts[0]) / (ts[-1] - ts[0]), a["width"][keep], 1)[0]
    rel = float(slope) / float(np.median(a["width"][keep]))
    return 0 if abs(rel) < _MIN_WIDTH_TREND else (1 if rel > 0 else -1)


def tip_end_offset_px(width_px: float, diameter_mm: float, cone_mm: float, foreshortening: float) -> float:
    """How far the visible end (half-way drop of the centre value) lies beyond the tip, pixels.

    A flat end is a disk across the pin: seen at foreshortening ``f`` (projected over true
    length) its silhouette reaches ``r sqrt(1 - f^2)`` beyond the axis's end. A pointed
    end of axial length ``cone_mm`` thins to nothing at the tip: the centre value falls
    to half at half the cone's projected length before it (a negative offset).
    """
    f = float(np.clip(foreshortening, 0.0, 1.0))
    if cone_mm > 0:
        return -0.5 * cone_mm * f * width_px / diameter_mm
    return 0.5 * width_px * math.sqrt(1.0 - f * f)


def finish_detection(img, valid, seg: dict, width_px: float, prior, settings, mm_per_px: float,
                     n_candidates: int) -> dict | None:
    """Tip and back end, tip side from the prior or the field border, confidence."""
    p0, d, w = seg["point"], seg["direction"], width_px
    t_a, t_b = seg["t"]
    offsets = np.arange(-1.5 * w, 1.5 * w + 1e-9, max(0.5, w / 10.0))
    ts = np.linspace(t_a, t_b, max(3, int((t_b - t_a) / (0.5 * w))))
    vals, ok = sample_profiles(img, valid, p0, d, ts, offsets)
    a = analyse_profiles(vals, ok, offsets, w)
    plateau = float(np.median(a["contrast"]))
    # the walks start where the run last shows the pin's two-sided signature: the run's gap
    # bridging may have carried it on along a band continuing the pin's line
    pin_like = np.flatnonzero(a["ok"] & (a["contrast"] >= 0.25 * plateau) & (a["width"] > 0.3 * w)
                              & (a["width"] < settings.max_width_ratio * w))
    if len(pin_like):
        t_a, t_b = float(ts[pin_like[0]]), float(ts[pin_like[-1]])
    ends = {}
    for name, t_end, sign in (("a", t_a, -1.0), ("b", t_b, 1.0)):
        ends[name] = walk_end(img, valid, p0, d, t_end, sign, w, plateau, seg["width"],
                              settings.max_width_ratio)
    pa, pb = p0 + ends["a"]["t"] * d, p0 + ends["b"]["t"] * d
    tip_is_b = _tip_is_b(pa, pb, ends["a"]["at_border"], ends["b"]["at_border"], prior, img.shape)
    ambiguous = False
    if prior is not None and prior.foreshortening < END_ON_FORESHORTENING:
        # the planned axis is seen nearly end on: the pin's image direction says little about
        # which end is the tip, its perspective does (the end nearer the source is wider)
        wider_b = width_trend(img, valid, p0, d, ends["a"]["t"], ends["b"]["t"], w)
        if wider_b != 0:
            tip_is_b = (wider_b > 0) == (prior.apex_depth_mm < prior.entry_depth_mm)
        elif prior.foreshortening < 0.15:
            ambiguous = True
    tip, back = (pb, pa) if tip_is_b else (pa, pb)
    tip_state = ends["b"] if tip_is_b else ends["a"]
    direction = (tip - back) / max(np.linalg.norm(tip - back), 1e-9)
    if tip_state["seen"] and not ambiguous:
        tip = tip - direction * tip_end_offset_px(w, settings.pin_diameter_mm, settings.tip_cone_mm,
                                                  1.0 if prior is None else prior.foreshortening)
    length_mm = float(np.linalg.norm(tip - back)) * mm_per_px
    f_contrast = min(1.0, plateau / _FULL_CONTRAST)
    f_length = min(1.0, length_mm / (3.0 * settings.min_length_mm))
    f_straight = math.exp(-0.5 * (seg["rms"] / (_STRAIGHT_SIGMA * w)) ** 2)
    excess = max(0.0, abs(seg["width"] / w - 1.0) - 0.1)
    f_width = math.exp(-0.5 * (excess / _WIDTH_SIGMA) ** 2)
    conf = float(math.sqrt(f_contrast * f_length * f_straight * f_width))
    return {"tip_px": tip, "back_px": back, "direction_px": direction, "width_px": seg["width"],
            "contrast": plateau, "line_rms_px": seg["rms"], "confidence": conf,
            "tip_occluded": tip_state["occluded"], "tip_at_border": tip_state["at_border"],
            "tip_ambiguous": ambiguous}


def _tip_is_b(pa, pb, a_border: bool, b_border: bool, prior, shape) -> bool:
    if prior is not None:
        axis = prior.apex_px - prior.entry_px
        if prior.foreshortening >= 0.15 and np.linalg.norm(axis) > 1e-6:
            return bool((pb - pa) @ axis > 0)
        return bool(np.linalg.norm(pb - prior.apex_px) < np.linalg.norm(pa - prior.apex_px))
    if a_border != b_border:
        return a_border
    centre = np.array([shape[1] - 1, shape[0] - 1]) / 2.0
    return bool(np.linalg.norm(pb - centre) < np.linalg.norm(pa - centre))
