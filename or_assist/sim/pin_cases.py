"""Simulated guide-pin cases on the real CT for the guidance tests and benchmark.

A case is a planned implant of ``tests/data/real_ct_plan.json``, a guide pin off its
plan by a known tip offset (perpendicular to the planned axis, mm) and angle (deg), and
two C-arm shots (inlet and outlet of that implant, each with a random error of the
C-arm's placement) simulated as 1080p video frames, optionally with other implants
already placed. ``pin=False`` gives the same shots without the pin.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from or_assist.core.carm_profiles import load_profile
from or_assist.core.ct.load import load_ct
from or_assist.core.pose import Pose, rotation_about_axis
from or_assist.core.instruments import GuidePin
from or_assist.core.plan import load_plan
from or_assist.core.view_poses import plan_view_pose
from or_assist.render.drr import AttenuationVolume, DRRRenderer
from or_assist.sim.shots.simulate import simulate_shot
from or_assist.sim.shots.settings import ShotSettings



@dataclass
class PinCase:
    implant: object
    pin: GuidePin | None
    offset_mm: float
    angle_deg: float
    shots: list            # SimulatedShot per view
    nominal_poses: list    # the planned views (a registration's start)
    placed: tuple
    sleeve: GuidePin | None = None   # the steel sleeve / drill guide around the pin's back part


def sleeve_around(pin: GuidePin, implant, diameter_mm: float, gap_mm: float = 5.0) -> GuidePin:
    """A steel sleeve (or drill guide: a solid steel cylinder of ``diameter_mm``) around the
    pin from its back end to ``gap_mm`` short of the planned entry's depth along the pin
    (the sleeve rests outside the bone, the pin runs on bare into it)."""
    d = (pin.tip_lps_mm - pin.back_lps_mm) / np.linalg.norm(pin.tip_lps_mm - pin.back_lps_mm)
    in_bone = float((pin.tip_lps_mm - implant.entry_lps_mm) @ implant.axis_unit)
    end = pin.tip_lps_mm - d * (max(in_bone, 0.0) + gap_mm)
    return GuidePin(end, pin.back_lps_mm, diameter_mm=diameter_mm, id="sleeve")


@functools.lru_cache(maxsize=4)
def setup(plan_path: str | Path, detector_px: int = 512):
    """(plan, renderer, detector geometry) for a plan and its CT, cached.

    Parameters
    ----------
    plan_path : str or Path
        An ``or_assist.plan/1`` file whose CT is readable (the tests and the benchmark use
        ``tests/data/real_ct_plan.json``).
    detector_px : int
        Detector size of the C-arm profile's geometry.
    """
    plan = load_plan(plan_path)
    renderer = DRRRenderer(AttenuationVolume.from_ct(load_ct(plan.ct_path)))
    return plan, renderer, load_profile("siemens_cios_fusion").geometry_at(detector_px)


def deviated_pin(implant, offset_mm: float, angle_deg: float, advance: float, rng,
                 tip_cone_mm: float = 0.0) -> GuidePin:
    """A pin whose tip is ``offset_mm`` off the planned axis and which is tilted by ``angle_deg``
    (with a pointed tip of axial length ``tip_cone_mm`` when > 0)."""
    a = implant.axis_unit
    r = rng.normal(size=3)
    r -= (r @ a) * a
    r /= np.linalg.norm(r)
    q = rng.normal(size=3)
    q -= (q @ a) * a
    q /= np.linalg.norm(q)
    direction = rotation_about_axis(np.cross(a, q), np.radians(angle_deg)) @ a
    tip = implant.entry_lps_mm + advance * implant.length_mm * a + offset_mm * r
    return GuidePin.from_tip_direction(tip, direction, 150.0, tip_cone_mm=tip_cone_mm)


def jittered(pose: Pose, rng, angle_deg: float, shift_mm: float) -> Pose:
    """The pose with the C-arm misplaced by up to ``angle_deg`` about the isocentre and ``shift_mm``."""
    axis = rng.normal(size=3)
    rot = rotation_about_axis(axis, np.radians(rng.uniform(-angle_deg, angle_deg)))
    m = pose.matrix.copy()
    iso = np.array([0.0, 0.0, 530.0])
    t = np.eye(4)
    t[:3, :3] = rot
    t[:3, 3] = iso - rot @ iso
    m = t @ m
    m[:3, 3] += rng.uniform(-shift_mm, shift_mm, size=3) * np.array([1.0, 1.0, 0.5])
    return Pose(m)


def make_case(seed: int, plan_path: str | Path, *, pin: bool = True, detector_px: int = 512, frame_px=(1920, 1080),
              views=("inlet", "outlet"), placed_probability: float = 0.3, max_offset_mm: float = 10.0,
              max_angle_deg: float = 10.0, jitter_deg: float = 3.0, jitter_mm: float = 5.0,
              supersample: int = 2, sleeve_mm: float = 0.0, tip_cone_mm: float = 0.0) -> PinCase:
    """One simulated two-view case (module doc); deterministic for a seed.

    ``sleeve_mm`` > 0 puts a steel sleeve of that diameter around the pin's back part
    (:func:`sleeve_around`; also in the pin-free shots, where it marks the pin's path);
    the random draws, and so the case, are the same as without it. ``tip_cone_mm`` > 0
    gives the pin a pointed (trocar) tip of that axial length, its tip where the flat
    pin's was (the same draws too).
    """
    plan, renderer, geometry = setup(Path(plan_path), detector_px)
    rng = np.random.default_rng(seed)
    k = int(rng.integers(len(plan.implants)))
    implant = plan.implants[k]
    offset, angle = rng.uniform(0, max_offset_mm), rng.uniform(0, max_angle_deg)
    the_pin = deviated_pin(implant, offset, angle, rng.uniform(0.6, 1.0), rng, tip_cone_mm)
    placed = tuple(i for j, i in enumerate(plan.implants) if j != k and rng.uniform() < placed_probability)
    sleeve = sleeve_around(the_pin, implant, sleeve_mm) if sleeve_mm > 0 else None
    steel = placed + ((sleeve,) if sleeve is not None else ())
    shots, nominal = [], []
    for view in views:
        p0 = plan_view_pose(plan, implant.id, view, geometry=geometry)
        pose = jittered(p0, rng, jitter_deg, jitter_mm)
        settings = ShotSettings(frame_size_px=frame_px, seed=int(rng.integers(1 << 30)), supersample=supersample)
        shots.append(simulate_shot(renderer, pose, geometry, pin=the_pin if pin else None, implants=steel,
                                   settings=settings))
        nominal.append(p0)
    return PinCase(implant, the_pin if pin else None, offset, angle, shots, nominal, placed, sleeve)


def demo_shots(seed: int, *, randomise: bool = False, pin: bool = True) -> list[dict]:
    """The OR demo's shots (sample pelvis, :func:`~or_assist.sim.scenario.demo_case.demo_app_scenario`),
    one per scripted step, as the demo's frame grabber delivers them.

    Parameters
    ----------
    seed : int
        Seeds the exposures' noise (and, with ``randomise``, the draws).
    randomise : bool
        Instead of the scripted pins: per step a pin advanced 20-100 % of the implant,
        its tip 0-2 mm anterior/posterior and up to 5 mm cranial/caudal of the plan,
        tilted 0-8 deg, and the C-arm up to 3 deg off the view in orbit and tilt.
    pin : bool
        False: the same steps without a pin.

    Returns
    -------
    list of dict
        ``implant``, ``view``, ``shot`` (:class:`SimulatedShot`), ``label``, ``landmarks``.
    """
    from dataclasses import replace

    from or_assist.sim.scenario.demo_case import demo_app_scenario
    from or_assist.sim.scenario.model import PinState
    from or_assist.sim.scenario.player import ScenarioSource
    from or_assist.sim.scenario.spec import load_sample_case

    ct, plan, geometry = _sample_case(load_sample_case)
    scenario = demo_app_scenario(plan, seed=int(seed))
    steps = list(scenario.steps)
    rng = np.random.default_rng(seed)
    for k, st in enumerate(steps):
        if randomise:
            state = PinState(float(rng.uniform(0.2, 1.0)),
                             (0.0, float(rng.uniform(-2.0, 2.0)), float(rng.uniform(-5.0, 5.0))),
                             float(rng.uniform(0.0, 8.0)))
            st = replace(st, pin=state, orbital_offset_deg=float(rng.uniform(-3.0, 3.0)),
                         tilt_offset_deg=float(np.clip(st.tilt_offset_deg + rng.uniform(-3.0, 3.0), -30, 30)))
        steps[k] = st if pin else replace(st, pin=None)
    scenario = replace(scenario, steps=tuple(steps))
    source = ScenarioSource(scenario, ct, plan, geometry, realtime=False, loop=False)
    out = []
    for k, st in enumerate(steps):
        shot = source._simulate(k, 1000 * int(seed) + k)
        out.append({"implant": plan.implant(st.implant), "view": st.view, "shot": shot, "label": st.label,
                    "landmarks": plan.landmarks})
    return out


@functools.lru_cache(maxsize=1)
def _sample_case(loader):
    return loader()
