"""The simulated C-arm as a kind of video source: ``open_source("sim:...")``.

Importing this module registers the ``sim:`` kind of
:func:`~or_assist.video.sources.spec.open_source`
(:func:`~or_assist.video.sources.spec.register_source_kind`): ``open_source("sim:...")``
then calls :func:`scenario_source_from_spec`: ``sim:demo`` (:func:`demo_scenario` on the
built-in sample case), ``sim:session`` (a 10-minute :func:`session_scenario`) or
``sim:<path to an or_assist.scenario/1 file>``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path


from or_assist.core.validate import check_bool
from or_assist.errors import InputError
from or_assist.sim.scenario.model import Scenario, load_scenario
from or_assist.sim.scenario.player import ScenarioSource
from or_assist.sim.scenario.scripts import demo_scenario, session_scenario
from or_assist.video.sources.spec import SIMULATOR_PREFIX as SPEC_PREFIX
from or_assist.video.sources.spec import register_source_kind

__all__ = ["scenario_source_from_spec", "load_sample_case"]

_SPEC_OPTIONS = ("realtime", "loop", "color", "seed", "duration_s", "width", "height", "fps", "fourcc",
                 "backend")


def load_sample_case():
    """``(ct, plan, geometry)`` of the built-in sample case (generated on first use)."""
    from or_assist.core.ct.load import load_ct
    from or_assist.core.geometry import load_geometry
    from or_assist.core.plan import load_plan
    from or_assist.sim.sample import build_sample_data

    paths = build_sample_data()
    return load_ct(paths["ct"]), load_plan(paths["plan"]), load_geometry(paths["geometry"])


def scenario_source_from_spec(spec: str, **options) -> ScenarioSource:
    """The simulator source named by ``spec`` (used by ``open_source("sim:...")``).

    Parameters
    ----------
    spec : str
        ``"sim:demo"``: :func:`demo_scenario` on the built-in sample case;
        ``"sim:session"``: a :func:`session_scenario` on it (``duration_s``, default
        600); ``"sim:<path>"``: an ``or_assist.scenario/1`` file (its plan and geometry,
        or the sample case when it names none).
    **options
        ``realtime`` (default True: a simulated grabber delivers at its frame rate),
        ``loop`` (default False), ``color``, ``seed``, ``duration_s``; capture
        settings ``width``, ``height`` (the frame size) and ``fps`` change the video;
        ``fourcc`` and ``backend`` are only reported as requested.

    Raises
    ------
    InputError
        Not a ``sim:`` spec, an unknown option, a missing or malformed scenario file.
    """
    if not isinstance(spec, str) or not spec.startswith(SPEC_PREFIX) or len(spec) <= len(SPEC_PREFIX):
        raise InputError(f"expected 'sim:demo', 'sim:session' or 'sim:<scenario.json>', got {spec!r}", "spec")
    unknown = sorted(set(options) - set(_SPEC_OPTIONS))
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(unknown)} for a simulator source; expected some of "
                         f"{', '.join(_SPEC_OPTIONS)}", spec)
    for key in ("realtime", "loop", "color"):
        if key in options:
            check_bool(options[key], f"option {key!r}")
    what = spec[len(SPEC_PREFIX):]
    if "duration_s" in options and what != "session":
        raise InputError("applies to sim:session only", "option 'duration_s'")
    if what in ("demo", "session"):
        ct, plan, geometry = load_sample_case()
        if what == "demo":
            scenario = demo_scenario(plan)
        else:
            scenario = session_scenario(plan, duration_s=options.get("duration_s", 600.0),
                                        seed=options.get("seed", 0))
    else:
        scenario = load_scenario(Path(what))
        ct, plan, geometry = _case_of(scenario)
    changes = {}
    if options.get("seed") is not None:
        changes["seed"] = options["seed"]
    if options.get("fps") is not None:
        changes["fps"] = options["fps"]
    if options.get("width") is not None or options.get("height") is not None:
        w, h = scenario.video.frame_size_px
        size = (options.get("width") or w, options.get("height") or h)
        changes["video"] = replace(scenario.video, frame_size_px=size)
    if changes:
        scenario = replace(scenario, **changes)
    requested = {k: options[k] for k in ("width", "height", "fps", "fourcc", "backend")
                 if options.get(k) is not None}
    return ScenarioSource(scenario, ct, plan, geometry, realtime=options.get("realtime", True),
                          loop=options.get("loop", False), color=options.get("color", False), name=spec,
                          requested=requested)


def _case_of(scenario: Scenario):
    """CT, plan and geometry a scenario names (the sample case for what it leaves out)."""
    from or_assist.core.geometry import load_geometry
    from or_assist.core.plan import load_plan, load_plan_ct

    if scenario.plan_path is None:
        ct, plan, geometry = load_sample_case()
    else:
        plan = load_plan(scenario.plan_path)
        ct = load_plan_ct(plan)[0]
        geometry = None
    if scenario.geometry_path is not None:
        geometry = load_geometry(scenario.geometry_path)
    elif geometry is None:
        from or_assist.core.carm_profiles import load_profile
        from or_assist.sim.sample import SAMPLE_GEOMETRY_SIZE_PX, SAMPLE_PROFILE

        geometry = load_profile(SAMPLE_PROFILE).geometry_at(SAMPLE_GEOMETRY_SIZE_PX)
    return ct, plan, geometry


register_source_kind(SPEC_PREFIX, scenario_source_from_spec)
