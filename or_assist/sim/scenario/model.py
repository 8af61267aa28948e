"""Scripted C-arm sessions: the steps and their JSON file.

A :class:`Scenario` is a list of :class:`ScenarioStep`. Each step puts the C-arm at a
planned view of one implant (``lateral``, ``inlet``, ``outlet``, ``ap``, ``axis``),
optionally turned by orbital / tilt offsets, with the guide pin at some depth and
deviation (or no pin), and takes either

* a **shot**: one exposure, which builds up over ``ramp_frames`` video frames and is
  then held (last-image-hold) for ``hold_s``; or
* **live** fluoroscopy: a new exposure every video frame for ``live_s``, then the
  last-image-hold (the mean of the last ``lih_average_frames`` exposures, as C-arms
  show a noise-reduced held image) for ``hold_s``.

Between steps the C-arm moves while the monitor still holds the previous image, as in
theatre. :mod:`or_assist.sim.scenario.timeline` turns a scenario into the ground truth of
each video frame without rendering anything.
:class:`or_assist.sim.scenario.player.ScenarioSource` renders the frames;
:mod:`or_assist.sim.scenario.scripts` writes the built-in scenarios.

File format ``or_assist.scenario/1`` (every field but ``schema`` and ``steps`` optional)::

    {"schema": "or_assist.scenario/1", "name": "demo", "fps": 25.0, "seed": 0,
     "start_blank_s": 1.0,
     "plan": "sample_plan.json", "geometry": "geometry.json",
     "video": {"frame_size_px": [1280, 720], "detector_size_px": 384, ...},
     "steps": [{"implant": "L1", "view": "lateral", "orbital_offset_deg": 0.0,
                "tilt_offset_deg": 0.0, "mode": "shot", "live_s": 0.0, "hold_s": 8.0,
                "pin": {"advance_fraction": 0.3, "offset_mm": [0, 0, 3], "tilt_deg": 4.0},
                "label": "first lateral"}]}

``plan`` and ``geometry`` are paths relative to the file; without them the built-in
sample case is used. ``video`` holds :class:`VideoSettings` fields.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from or_assist.core import jsonio
from or_assist.core.validate import check_bool, check_choice, check_integer, check_number, check_vector
from or_assist.core.vocabulary import VIEW_KINDS
from or_assist.errors import InputError, SchemaError
from or_assist.sim.scenario.timeline import scenario_timeline

__all__ = ["SCENARIO_SCHEMA", "MODES", "OVERLAY_POSITIONS", "PinState", "ScenarioStep", "VideoSettings",
           "Scenario", "load_scenario",
           "save_scenario", "scenario_from_dict"]

SCENARIO_SCHEMA = "or_assist.scenario/1"
MODES = ("shot", "live")
OVERLAY_POSITIONS = ("top-right", "top-left", "bottom-right", "bottom-left", "top")
PHASES = ("blank", "live", "ramp", "hold")


@dataclass(frozen=True)
class PinState:
    """Where the guide pin is during a step (see :func:`or_assist.sim.sample.demo_pin`).

    Attributes
    ----------
    advance_fraction : float
        Tip position from the implant's entry (0) to its apex (1); up to 1.2.
    offset_mm : (3,) tuple of float
        Tip offset from the planned axis, LPS mm (each within +-50 mm).
    tilt_deg : float
        Angle between the pin and the planned axis (-45 to 45 deg).
    implant : str or None
        The implant whose axis the pin follows; None = the step's implant.
    """

    advance_fraction: float = 0.5
    offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tilt_deg: float = 0.0
    implant: str | None = None

    def __post_init__(self):
        s = object.__setattr__
        s(self, "advance_fraction", check_number(self.advance_fraction, "advance_fraction", 0.0, 1.2))
        expected = "3 finite numbers within +-50 mm (LPS)"
        off = check_vector(self.offset_mm if isinstance(self.offset_mm, (list, tuple, np.ndarray)) else None,
                           3, "offset_mm", expected=expected)
        if np.any(np.abs(off) > 50.0):
            raise InputError(f"must be {expected}, got {self.offset_mm!r}", "offset_mm")
        s(self, "offset_mm", tuple(float(x) for x in off))
        s(self, "tilt_deg", check_number(self.tilt_deg, "tilt_deg", -45.0, 45.0))
        if self.implant is not None and (not isinstance(self.implant, str) or not self.implant):
            raise InputError(f"must be None or an implant id, got {self.implant!r}", "implant")


@dataclass(frozen=True)
class ScenarioStep:
    """One C-arm position and what is done there (module doc).

    Attributes
    ----------
    implant : str
        Implant id of the plan; the view is centred on it.
    view : {'lateral', 'inlet', 'outlet', 'ap', 'axis'}
    orbital_offset_deg, tilt_offset_deg : float
        C-arm angles added to the planned view's (within +-30 deg;
        :mod:`or_assist.core.carm` signs).
    pin : PinState or None
        No pin when None.
    mode : {'shot', 'live'}
    live_s : float
        Duration of live fluoroscopy (mode 'live': > 0, at most 60 s; ignored for shots).
    hold_s : float
        Last-image-hold afterwards (0-600 s; a shot needs at least one frame).
    label : str
        Free text for logs.
    """

    implant: str
    view: str
    orbital_offset_deg: float = 0.0
    tilt_offset_deg: float = 0.0
    pin: PinState | None = None
    mode: str = "shot"
    live_s: float = 0.0
    hold_s: float = 5.0
    label: str = ""

    def __post_init__(self):
        s = object.__setattr__
        if not isinstance(self.implant, str) or not self.implant:
            raise InputError(f"must be an implant id, got {self.implant!r}", "implant")
        check_choice(self.view, VIEW_KINDS, "view")
        s(self, "orbital_offset_deg", check_number(self.orbital_offset_deg, "orbital_offset_deg", -30.0, 30.0))
        s(self, "tilt_offset_deg", check_number(self.tilt_offset_deg, "tilt_offset_deg", -30.0, 30.0))
        if self.pin is not None and not isinstance(self.pin, PinState):
            raise InputError(f"must be None or a PinState, got {type(self.pin).__name__}", "pin")
        check_choice(self.mode, MODES, "mode")
        s(self, "live_s", check_number(self.live_s, "live_s", 0.0, 60.0))
        if self.mode == "live" and self.live_s <= 0:
            raise InputError("must be > 0 for a live step", "live_s")
        s(self, "hold_s", check_number(self.hold_s, "hold_s", 0.0, 600.0))
        if not isinstance(self.label, str):
            raise InputError(f"must be a string, got {self.label!r}", "label")


@dataclass(frozen=True)
class VideoSettings:
    """How the simulated C-arm and frame grabber deliver the video.

    Attributes
    ----------
    frame_size_px : (width, height)
        The video frame (default 1280 x 720).
    detector_size_px : int
        Square detector image the shots are simulated at (64-2048; default 384), scaled
        into the frame.
    supersample : int
        Rays per detector pixel along each axis (1-4; default 2).
    i0_photons_per_px : float
        Dose (:class:`or_assist.sim.shots.settings.ShotSettings`).
    collimation : {'circle', 'square', None}
    invert : bool
        Bone white.
    grabber_noise_grey : float
        Standard deviation of the grabber's per-pixel noise, grey levels (0-20; 1.2).
    flicker_grey : float
        Standard deviation of a per-frame brightness offset (0-10; default 0.3).
    ramp_frames : int
        Frames in which a single shot builds up (blends of the old and the new image)
        before it is held (0-10; default 1).
    lih_average_frames : int
        The held image after live fluoroscopy is the mean of this many last exposures
        (1-16; default 4; 1 = the last live frame itself).
    overlay_position : {'top-right', 'top-left', 'bottom-right', 'bottom-left', 'top'}
        Where the clock and the radiation-on symbol are drawn ('top': centred, over
        the image).
    clock : bool
        Draw a clock that changes every second.
    live_indicator : bool
        Draw a radiation-on symbol during live fluoroscopy.
    """

    frame_size_px: tuple[int, int] = (1280, 720)
    detector_size_px: int = 384
    supersample: int = 2
    i0_photons_per_px: float = 1e5
    collimation: str | None = "circle"
    invert: bool = False
    grabber_noise_grey: float = 1.2
    flicker_grey: float = 0.3
    ramp_frames: int = 1
    lih_average_frames: int = 4
    overlay_position: str = "top-right"
    clock: bool = True
    live_indicator: bool = True

    def __post_init__(self):
        s = object.__setattr__
        try:
            w, h = self.frame_size_px
        except (TypeError, ValueError):
            raise InputError(f"must be two integers (width, height), got {self.frame_size_px!r}",
                             "frame_size_px") from None
        s(self, "frame_size_px", (check_integer(w, "frame_size_px", 32, 8192), check_integer(h, "frame_size_px", 32, 8192)))
        s(self, "detector_size_px", check_integer(self.detector_size_px, "detector_size_px", 64, 2048))
        if self.detector_size_px > max(self.frame_size_px) * 4:
            raise InputError(f"{self.detector_size_px} px is more than 4 times the frame; lower it",
                             "detector_size_px")
        s(self, "supersample", check_integer(self.supersample, "supersample", 1, 4))
        s(self, "i0_photons_per_px", check_number(self.i0_photons_per_px, "i0_photons_per_px", 1.0, 1e12))
        if self.collimation not in ("circle", "square", None):
            raise InputError(f"must be 'circle', 'square' or None, got {self.collimation!r}", "collimation")
        s(self, "invert", check_bool(self.invert, "invert"))
        s(self, "grabber_noise_grey", check_number(self.grabber_noise_grey, "grabber_noise_grey", 0.0, 20.0))
        s(self, "flicker_grey", check_number(self.flicker_grey, "flicker_grey", 0.0, 10.0))
        s(self, "ramp_frames", check_integer(self.ramp_frames, "ramp_frames", 0, 10))
        s(self, "lih_average_frames", check_integer(self.lih_average_frames, "lih_average_frames", 1, 16))
        if self.overlay_position not in OVERLAY_POSITIONS:
            raise InputError(f"must be one of {', '.join(OVERLAY_POSITIONS)}, got {self.overlay_position!r}",
                             "overlay_position")
        s(self, "clock", check_bool(self.clock, "clock"))
        s(self, "live_indicator", check_bool(self.live_indicator, "live_indicator"))


@dataclass(frozen=True)
class Scenario:
    """A scripted C-arm session (module doc).

    Attributes
    ----------
    steps : tuple of ScenarioStep
        At least one.
    name : str
    fps : float
        Video frame rate (1-120; default 25).
    seed : int
        Seed of every random number (photon and grabber noise); same seed, same video.
    start_blank_s : float
        Black screen (with overlays) before the first step (0-60 s; default 1).
    video : VideoSettings
    plan_path, geometry_path : Path or None
        The plan and C-arm geometry; None = the built-in sample case.
    """

    steps: tuple[ScenarioStep, ...]
    name: str = "scenario"
    fps: float = 25.0
    seed: int = 0
    start_blank_s: float = 1.0
    video: VideoSettings = field(default_factory=VideoSettings)
    plan_path: Path | None = None
    geometry_path: Path | None = None

    def __post_init__(self):
        s = object.__setattr__
        if not isinstance(self.steps, (list, tuple)) or not self.steps or \
                not all(isinstance(st, ScenarioStep) for st in self.steps):
            raise InputError("must be a non-empty sequence of ScenarioStep", "steps")
        s(self, "steps", tuple(self.steps))
        if not isinstance(self.name, str):
            raise InputError(f"must be a string, got {self.name!r}", "name")
        s(self, "fps", check_number(self.fps, "fps", 1.0, 120.0))
        s(self, "seed", check_integer(self.seed, "seed", 0, 2**63 - 1))
        s(self, "start_blank_s", check_number(self.start_blank_s, "start_blank_s", 0.0, 60.0))
        if not isinstance(self.video, VideoSettings):
            raise InputError(f"must be VideoSettings, got {type(self.video).__name__}", "video")
        for name in ("plan_path", "geometry_path"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, (str, os.PathLike)):
                    raise InputError(f"must be None or a path, got {value!r}", name)
                s(self, name, Path(value))
        for k, step in enumerate(self.steps):
            if step.mode == "shot" and self._frames(step.hold_s) < 1:
                raise InputError(f"a shot must be held for at least one frame (1/{self.fps:g} s), got "
                                 f"{step.hold_s:g} s", f"steps[{k}].hold_s")

    def _frames(self, seconds: float) -> int:
        return int(round(seconds * self.fps))

    @property
    def frame_count(self) -> int:
        """Number of video frames of the whole scenario."""
        return len(scenario_timeline(self))

    @property
    def duration_s(self) -> float:
        """Length of the video in seconds."""
        return self.frame_count / self.fps

    def to_dict(self, base_dir: str | os.PathLike | None = None) -> dict:
        """The ``or_assist.scenario/1`` document (paths relative to ``base_dir`` if given)."""
        def rel(p):
            if p is None:
                return None
            if base_dir is not None:
                try:
                    return os.path.relpath(Path(p).resolve(), Path(base_dir).resolve())
                except ValueError:  # another drive
                    pass
            return str(p)

        steps = []
        for st in self.steps:
            d = {f.name: getattr(st, f.name) for f in fields(ScenarioStep)}
            d["pin"] = None if st.pin is None else {f.name: getattr(st.pin, f.name) for f in fields(PinState)}
            if d["pin"] is not None:
                d["pin"]["offset_mm"] = list(d["pin"]["offset_mm"])
            steps.append(d)
        video = {f.name: getattr(self.video, f.name) for f in fields(VideoSettings)}
        video["frame_size_px"] = list(video["frame_size_px"])
        return {"schema": SCENARIO_SCHEMA, "name": self.name, "fps": self.fps, "seed": self.seed,
                "start_blank_s": self.start_blank_s, "plan": rel(self.plan_path),
                "geometry": rel(self.geometry_path), "video": video, "steps": steps}


def _build(cls, kwargs: dict, where: str):
    """``cls(**kwargs)`` with an InputError re-raised as a SchemaError naming ``where``."""
    try:
        return cls(**kwargs)
    except InputError as exc:
        raise SchemaError(f"field '{exc.source}': {str(exc).split(': ', 1)[-1]}"
                          if exc.source else str(exc), where) from None


def _object(doc, name: str, where: str, allowed: set[str]) -> dict | None:
    """An optional object field whose keys must be among ``allowed`` (None when absent)."""
    value = jsonio.field(doc, name, where, None)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SchemaError(f"field '{name}' must be an object, got {value!r}", where)
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise SchemaError(f"field '{name}': unknown field(s) {', '.join(unknown)}; expected some of "
                          f"{', '.join(sorted(allowed))}", where)
    return value


_TOP_FIELDS = ("schema", "name", "fps", "seed", "start_blank_s", "plan", "geometry", "video", "steps")


def scenario_from_dict(doc: dict, where: str = "scenario", base_dir: str | os.PathLike | None = None) -> Scenario:
    """Build a :class:`Scenario` from its document; errors name ``where`` and the field.

    Paths (``plan``, ``geometry``) are resolved against ``base_dir`` when relative.
    """
    jsonio.check_schema(doc, SCENARIO_SCHEMA, where)
    unknown = sorted(set(doc) - set(_TOP_FIELDS))
    if unknown:
        raise SchemaError(f"unknown field(s) {', '.join(unknown)}; expected some of {', '.join(_TOP_FIELDS)}",
                          where)
    step_fields = {f.name for f in fields(ScenarioStep)}
    pin_fields = {f.name for f in fields(PinState)}
    video_fields = {f.name for f in fields(VideoSettings)}
    raw_steps = jsonio.field(doc, "steps", where)
    if not isinstance(raw_steps, list) or not raw_steps:
        raise SchemaError("field 'steps' must be a non-empty list", where)
    steps = []
    for k, raw in enumerate(raw_steps):
        w = f"{where}: steps[{k}]"
        if not isinstance(raw, dict):
            raise SchemaError(f"must be an object, got {raw!r}", w)
        unknown = sorted(set(raw) - step_fields)
        if unknown:
            raise SchemaError(f"unknown field(s) {', '.join(unknown)}", w)
        for name in ("implant", "view"):
            jsonio.field(raw, name, w)
        kwargs = dict(raw)
        pin = _object(raw, "pin", w, pin_fields)
        kwargs["pin"] = None if pin is None else _build(PinState, pin, f"{w}.pin")
        steps.append(_build(ScenarioStep, kwargs, w))
    video = _object(doc, "video", where, video_fields) or {}
    if isinstance(video.get("frame_size_px"), list):
        video = {**video, "frame_size_px": tuple(video["frame_size_px"])}
    video = _build(VideoSettings, video, f"{where}: video")
    paths = {}
    for key in ("plan", "geometry"):
        value = jsonio.field(doc, key, where, None)
        if value is not None and not isinstance(value, str):
            raise SchemaError(f"field '{key}' must be a path string or null, got {value!r}", where)
        paths[key] = None if value is None else \
            (Path(value) if base_dir is None or Path(value).is_absolute() else Path(base_dir) / value)
    kwargs = {k: doc[k] for k in ("name", "fps", "seed", "start_blank_s") if k in doc}
    return _build(Scenario, dict(steps=steps, video=video, plan_path=paths["plan"],
                                 geometry_path=paths["geometry"], **kwargs), where)


def load_scenario(path: str | os.PathLike) -> Scenario:
    """Read an ``or_assist.scenario/1`` file (SchemaError naming the file and field)."""
    path = Path(path)
    doc = jsonio.read_json(path, SCENARIO_SCHEMA)
    return scenario_from_dict(doc, str(path), base_dir=path.parent)


def save_scenario(scenario: Scenario, path: str | os.PathLike) -> Path:
    """Write ``scenario`` as JSON (plan and geometry paths relative to the file)."""
    path = Path(path)
    return jsonio.write_json(path, scenario.to_dict(base_dir=path.parent))

