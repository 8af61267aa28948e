"""The demo case of the OR display: the built-in sample pelvis played by the shot simulator.

:func:`open_demo_case` plays the sample case as a 1080p frame grabber would deliver it
(:func:`demo_app_scenario`: per implant lateral, inlet and outlet with a deviating pin,
then again after the correction; the first lateral of each implant is taken 6 deg off the
planned tilt, so the C-arm positioning hint has something to say) and returns the
:class:`~or_assist.live.run.LiveCase` that ``or-assist demo`` shows or runs headless. Its
:attr:`~or_assist.live.run.LiveCase.script` says, for a frame, which implant and view the
scripted radiographer has just announced (the display selects them as a surgeon would with
the keys) and whether the scripted surgeon captures the shot.
"""

from __future__ import annotations

from dataclasses import replace

from or_assist.core.plan import Plan
from or_assist.live.pipeline import LivePipeline
from or_assist.live.run import LiveCase
from or_assist.register.pipeline import Registrar
from or_assist.register.settings import RegistrationSettings
from or_assist.render.drr import DRRRenderer
from or_assist.session.caselog import CaseLog
from or_assist.sim.scenario.model import Scenario, VideoSettings
from or_assist.sim.scenario.player import ScenarioSource
from or_assist.sim.scenario.spec import load_sample_case
from or_assist.sim.scenario.scripts import demo_scenario
from or_assist.video.sources.base import Frame

__all__ = ["DEMO_FRAME_SIZE_PX", "DEMO_TILT_OFFSET_DEG", "demo_app_scenario", "open_demo_case"]

DEMO_FRAME_SIZE_PX = (1920, 1080)
DEMO_TILT_OFFSET_DEG = 6.0


def demo_app_scenario(plan: Plan, *, implants=None, tilt_offset_deg: float = DEMO_TILT_OFFSET_DEG,
                      frame_size_px=DEMO_FRAME_SIZE_PX, **options) -> Scenario:
    """The demo scenario the OR display plays (module doc).

    Parameters
    ----------
    plan : Plan
    implants : sequence of str, optional
        Default: all of the plan's.
    tilt_offset_deg : float
        Tilt added to the first lateral of each implant.
    frame_size_px : (width, height)
    **options
        Passed to :func:`or_assist.sim.scenario.scripts.demo_scenario`.

    Returns
    -------
    Scenario
    """
    scenario = demo_scenario(plan, implants=implants, **options)
    steps = list(scenario.steps)
    seen = set()
    for k, step in enumerate(steps):
        if step.view == "lateral" and step.implant not in seen:
            seen.add(step.implant)
            steps[k] = replace(step, tilt_offset_deg=float(tilt_offset_deg),
                               label=f"{step.implant}: C-arm {tilt_offset_deg:g} deg off the planned tilt")
    video = replace(scenario.video if isinstance(scenario.video, VideoSettings) else VideoSettings(),
                    frame_size_px=tuple(int(x) for x in frame_size_px))
    return replace(scenario, steps=tuple(steps), video=video)


def open_demo_case(*, realtime: bool = True, loop: bool = True, implants=None, cases_root=None,
                   case_log: bool = True, registrar: Registrar | None = None,
                   registration_settings: RegistrationSettings | None = None,
                   hold_s: float | None = None) -> LiveCase:
    """The demo on the built-in sample pelvis (module doc).

    Parameters
    ----------
    realtime : bool
        Play at the video frame rate (the display) or as fast as possible (headless).
    loop : bool
        Start the scenario again at its end.
    implants : sequence of str, optional
        Implants the scenario visits (default all).
    cases_root : path-like, optional
        Where the case folder is made (default :func:`~or_assist.session.caselog.default_cases_root`).
    case_log : bool
        Write a case log.
    registrar : Registrar, optional
        Replaces the default :class:`~or_assist.register.pipeline.Registrar` (tests).
    registration_settings : RegistrationSettings, optional
        Settings of the default registrar (e.g. no time budget, for tests that must not
        depend on the machine's speed).
    hold_s : float, optional
        How long each shot stays on screen (the C-arm's last-image-hold; default that of
        :func:`~or_assist.sim.scenario.scripts.demo_scenario`). Longer on a slow machine,
        or in tests without a time budget, so that a shot is registered while it is shown.

    Returns
    -------
    LiveCase
    """
    ct, plan, geometry = load_sample_case()
    scenario = demo_app_scenario(plan, implants=implants, **({} if hold_s is None else {"hold_s": float(hold_s)}))
    source = ScenarioSource(scenario, ct, plan, geometry, realtime=realtime, loop=loop, name="sim:demo")
    video_geometry = source.video_geometry
    renderer = DRRRenderer(source._ensure_renderer().volume)
    if registrar is None:
        registrar = Registrar(renderer, video_geometry, registration_settings)
    log = CaseLog.create(cases_root, plan=plan, geometry=video_geometry.to_dict(),
                         patient_label="sample pelvis (synthetic)") if case_log else None
    pipeline = LivePipeline(plan, video_geometry, registrar=registrar, case_log=log, renderer=renderer)
    pipeline.set_masks(source.fov_mask, source.text_mask)
    steps = scenario.steps

    def script(frame: Frame) -> dict | None:
        position = source.position_of(frame)
        if not 0 <= position < source.frame_count:
            return None
        t = source.truth(position)
        if t.step < 0:
            return None
        step = steps[t.step]
        return {"implant": step.implant, "view": step.view, "capture": step.pin is not None, "label": step.label}

    return LiveCase(source, pipeline, "sim:demo", script, log)
