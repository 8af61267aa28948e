"""Built-in C-arm sessions: the OR demo and long random sessions for benchmarks.

:func:`demo_scenario` is what ``sim:demo`` plays (and the OR demo app shows);
:func:`session_scenario` is a long, realistic random session (``sim:session``, the
new-shot detection benchmark).
"""

from __future__ import annotations

import numpy as np

from or_assist.core.validate import check_number
from or_assist.errors import InputError
from or_assist.sim.scenario.model import PinState, Scenario, ScenarioStep, VideoSettings

__all__ = ["demo_scenario", "session_scenario"]


def demo_scenario(plan, *, implants=None, hold_s: float = 6.0, **scenario_options) -> Scenario:
    """The OR demo: per implant, lateral -> inlet -> outlet with a deviating pin, then
    the same three views again after the pin was corrected and advanced.

    The pin advances between the lateral and the inlet, and stays put between the inlet
    and the outlet that follows it, so each inlet + outlet pair gives the pin in 3-D
    (:mod:`or_assist.live.two_view`) and each lateral + inlet pair is refused as moved.

    Parameters
    ----------
    plan : Plan
    implants : sequence of str, optional
        Implant ids in order (default: all of the plan's).
    hold_s : float
        Last-image-hold of every step.
    **scenario_options
        Further :class:`Scenario` fields (``fps``, ``seed``, ``video``, ...).

    Returns
    -------
    Scenario
    """
    ids = [i.id for i in plan.implants] if implants is None else list(implants)
    for i in ids:
        plan.implant(i)  # InputError naming the valid ids
    deviated = dict(offset_mm=(0.0, 0.0, 3.0), tilt_deg=4.0)
    corrected = dict(offset_mm=(0.0, 0.0, 0.5), tilt_deg=0.5)
    steps = []
    for i in ids:
        steps += [
            ScenarioStep(i, "lateral", pin=PinState(0.25, **deviated), hold_s=hold_s, label=f"{i}: start"),
            ScenarioStep(i, "inlet", pin=PinState(0.35, **deviated), mode="live", live_s=1.5, hold_s=hold_s,
                         label=f"{i}: inlet, pin off the plan"),
            ScenarioStep(i, "outlet", pin=PinState(0.35, **deviated), hold_s=hold_s,
                         label=f"{i}: outlet, pin not moved (with the inlet: the pin in 3-D)"),
            ScenarioStep(i, "lateral", pin=PinState(0.6, **corrected), hold_s=hold_s,
                         label=f"{i}: corrected"),
            ScenarioStep(i, "inlet", pin=PinState(1.0), hold_s=hold_s, label=f"{i}: advanced to the apex"),
            ScenarioStep(i, "outlet", pin=PinState(1.0), mode="live", live_s=2.0, hold_s=hold_s,
                         label=f"{i}: at the apex (with the inlet: the pin in 3-D)"),
        ]
    return Scenario(tuple(steps), **{"name": "demo", **scenario_options})


def session_scenario(plan, *, duration_s: float = 600.0, seed: int = 0, live_fraction: float = 0.3,
                     hold_range_s=(4.0, 12.0), live_range_s=(1.0, 3.0), **scenario_options) -> Scenario:
    """A long random session: implants in turn, views cycling lateral -> inlet -> outlet
    with a small random C-arm misalignment (0 or +-2 deg), the pin advancing and its
    deviation shrinking; a share ``live_fraction`` of the steps are live fluoroscopy.

    Parameters
    ----------
    plan : Plan
    duration_s : float
        Steps are added until the video is at least this long.
    seed : int
        Seed of the script (and of the video noise).
    live_fraction : float
        Share of live steps (0-1).
    hold_range_s, live_range_s : (float, float)
        Uniform ranges of the hold and live durations.
    **scenario_options
        Further :class:`Scenario` fields.
    """
    check_number(duration_s, "duration_s", 1.0, 24 * 3600.0)
    check_number(live_fraction, "live_fraction", 0.0, 1.0)
    _range(hold_range_s, "hold_range_s", 600.0)
    _range(live_range_s, "live_range_s", 60.0)
    rng = np.random.default_rng(seed)
    ids = [i.id for i in plan.implants]
    if not ids:
        raise InputError("the plan has no implants", "plan")
    fps = scenario_options.get("fps", 25.0)
    views = ("lateral", "inlet", "outlet")
    steps, total = [], scenario_options.get("start_blank_s", 1.0)
    per_implant = 12
    k = 0
    while total < duration_s:
        implant = ids[(k // per_implant) % len(ids)]
        progress = (k % per_implant) / (per_implant - 1)
        deviation = 4.0 * (1.0 - progress)
        live = bool(rng.random() < live_fraction)
        step = ScenarioStep(
            implant, views[k % 3], orbital_offset_deg=float(rng.choice([-2.0, 0.0, 2.0])),
            pin=PinState(0.1 + 0.9 * progress, offset_mm=(0.0, 0.0, 0.75 * deviation), tilt_deg=deviation),
            mode="live" if live else "shot", live_s=float(rng.uniform(*live_range_s)) if live else 0.0,
            hold_s=float(rng.uniform(*hold_range_s)), label=f"step {k}")
        steps.append(step)
        total += step.hold_s + step.live_s + scenario_options.get("video", VideoSettings()).ramp_frames / fps
        k += 1
    return Scenario(tuple(steps), **{"name": f"session-{seed}", "seed": seed, **scenario_options})


def _range(value, name: str, hi: float) -> None:
    try:
        lo_s, hi_s = value
    except (TypeError, ValueError):
        raise InputError(f"must be two numbers (low, high) in seconds, got {value!r}", name) from None
    if check_number(lo_s, name, 0.1, hi) > check_number(hi_s, name, 0.1, hi):
        raise InputError(f"low must not exceed high, got {value!r}", name)
