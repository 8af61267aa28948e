"""The shot simulator as a video source: a scripted C-arm session, frame by frame.

:class:`ScenarioSource` is a :class:`~or_assist.video.sources.base.FrameSource` that
plays a :class:`~or_assist.sim.scenario.model.Scenario` (the steps and the file format
live in :mod:`or_assist.sim.scenario.model`, the ground truth in
:mod:`or_assist.sim.scenario.timeline`, the built-in scenarios in
:mod:`or_assist.sim.scenario.scripts`):

* every **exposure** is a full simulated shot (:func:`or_assist.sim.shots.simulate.simulate_shot`:
  photon noise, blur, glare, display, framing, burnt-in text) with its own seed; the
  noise-free DRR of each pose is rendered once and cached
  (:class:`~or_assist.render.pose_cache.PoseCachedRenderer`), so a new exposure of a
  known pose (each frame of live fluoroscopy) costs only the imaging chain, about
  20-40 ms at 384 px;
* **last-image-hold** repeats the held picture;
* the C-arm draws a **clock** (changing every second) and, during live fluoroscopy, a
  radiation-on symbol (:attr:`VideoSettings.overlay_position`);
* the **grabber** adds Gaussian pixel noise (``grabber_noise_grey``) and a per-frame
  brightness flicker (``flicker_grey``) to every frame and quantises to 8 bits.

Everything random is drawn from the scenario's seed, so the same scenario gives the
same video, frame for frame. The source plays as fast as it can or in real time
(``realtime=True``), and tells for every frame what it shows (:meth:`ScenarioSource.truth`).

The ``sim:`` sources of :func:`~or_assist.video.sources.spec.open_source` are made in
:mod:`or_assist.sim.scenario.spec`.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import replace

import cv2
import numpy as np

from or_assist.core.carm import carm_angles_from_pose, patient_axes, pose_from_carm_angles
from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose
from or_assist.core.validate import is_integer
from or_assist.errors import InputError
from or_assist.render.drr import AttenuationVolume, DRRRenderer
from or_assist.render.pose_cache import PoseCachedRenderer
from or_assist.sim.shots.simulate import simulate_shot
from or_assist.sim.shots.settings import DEFAULT_TEXT_BOTTOM, DEFAULT_TEXT_TOP, ShotSettings
from or_assist.sim.scenario.model import Scenario, ScenarioStep
from or_assist.sim.scenario.timeline import FrameTruth, held_images, scenario_timeline
from or_assist.video.sources.base import FrameSource, SourceInfo
from or_assist.video.sources.pacer import Pacer
from or_assist.video.sources.spec import SIMULATOR_PREFIX

__all__ = ["ScenarioSource"]

_CLOCK_START_S = 10 * 3600 + 32 * 60 + 7  # the clock starts at 10:32:07
_NOISE_BANK = 6  # grabber-noise fields drawn once; each frame takes one at a random shift
_NOISE_SHIFT_PX = 32
_TEXT_TOP = (DEFAULT_TEXT_TOP[0], DEFAULT_TEXT_TOP[1].split()[0])  # patient line and date (the clock ticks apart)


def _detector_geometry(geometry: CArmGeometry, size_px: int) -> CArmGeometry:
    """``geometry`` resampled so that its longer side has ``size_px`` pixels (same field)."""
    w, h = geometry.image_size_px
    if max(w, h) == size_px:
        return geometry
    s = size_px / max(w, h)
    return geometry.resampled(max(1, int(round(w * s))), max(1, int(round(h * s))))


def _step_pose(plan, step: ScenarioStep, geometry: CArmGeometry) -> Pose:
    from or_assist.core.view_poses import plan_view_pose

    base = plan_view_pose(plan, step.implant, step.view, geometry=geometry)
    if step.orbital_offset_deg == 0 and step.tilt_offset_deg == 0:
        return base
    axes = patient_axes(plan.landmarks)
    angles = carm_angles_from_pose(base, axes=axes)
    s2i = geometry.source_to_isocenter_mm
    iso = base.source_position_lps_mm + s2i * base.beam_direction_lps
    return pose_from_carm_angles(angles.orbital_deg + step.orbital_offset_deg,
                                 angles.tilt_deg + step.tilt_offset_deg, iso, s2i, axes=axes)


def _step_pin(plan, step: ScenarioStep):
    from or_assist.sim.sample import demo_pin

    if step.pin is None:
        return None
    implant = plan.implant(step.pin.implant or step.implant)
    return demo_pin(implant, step.pin.advance_fraction, step.pin.offset_mm, step.pin.tilt_deg)


class ScenarioSource(FrameSource):
    """Plays a scenario as a video source (module doc).

    Parameters
    ----------
    scenario : Scenario
    patient : CTVolume, AttenuationVolume or DRRRenderer
        The patient CT (a :class:`~or_assist.render.pose_cache.PoseCachedRenderer` is reused as is, so sources can
        share its cache).
    plan : Plan
        Gives the implants the steps name and their views.
    geometry : CArmGeometry
        The C-arm; resampled to ``scenario.video.detector_size_px``.
    realtime : bool
        Deliver frames at the scenario's frame rate (default: as fast as possible).
    loop : bool
        Start again after the last frame (default: end, ``read()`` returns None).
    color : bool
        Deliver BGR frames.
    name : str, optional
        Default ``"sim:<scenario name>"``.
    requested : dict, optional
        Capture settings that were asked for (reported in :class:`SourceInfo`).

    Raises
    ------
    InputError
        A bad argument, or a step naming an implant the plan does not have (the
        message names ``steps[k]``).
    """

    kind = "sim"

    def __init__(self, scenario: Scenario, patient, plan, geometry: CArmGeometry, *, realtime: bool = False,
                 loop: bool = False, color: bool = False, name: str | None = None,
                 requested: dict | None = None):
        if not isinstance(scenario, Scenario):
            raise InputError(f"expected a Scenario, got {type(scenario).__name__}", "scenario")
        if not isinstance(geometry, CArmGeometry):
            raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")
        if not hasattr(plan, "implants") or not hasattr(plan, "landmarks"):
            raise InputError(f"expected a Plan, got {type(plan).__name__}", "plan")
        if not (isinstance(patient, (AttenuationVolume, DRRRenderer)) or hasattr(patient, "hu")):
            raise InputError(f"expected a CTVolume, AttenuationVolume or DRRRenderer, got "
                             f"{type(patient).__name__}", "patient")
        super().__init__(name or f"{SIMULATOR_PREFIX}{scenario.name}", color=color)
        self.scenario = scenario
        self.plan = plan
        self.realtime = bool(realtime)
        self.loop = bool(loop)
        self._requested = dict(requested or {})
        self._patient = patient
        self._renderer: PoseCachedRenderer | None = patient if isinstance(patient, PoseCachedRenderer) else None
        video = scenario.video
        self.geometry = _detector_geometry(geometry, video.detector_size_px)
        self.timeline = scenario_timeline(scenario)
        self.held_images = held_images(self.timeline)
        self._poses, self._pins = [], []
        for k, step in enumerate(scenario.steps):
            try:
                self._poses.append(_step_pose(plan, step, self.geometry))
                self._pins.append(_step_pin(plan, step))
            except InputError as exc:
                raise InputError(str(exc), f"steps[{k}]") from None
        self._shot_settings = ShotSettings(
            i0_photons_per_px=video.i0_photons_per_px, supersample=video.supersample,
            collimation=video.collimation, invert=video.invert, frame_size_px=video.frame_size_px,
            text_top=_TEXT_TOP, text_bottom=DEFAULT_TEXT_BOTTOM)
        self._masks: tuple | None = None
        self._overlay_mask: np.ndarray | None = None
        self._noise: np.ndarray | None = None
        self._exposures: OrderedDict[int, np.ndarray] = OrderedDict()
        self._pacer = Pacer(scenario.fps)
        self._rewind()

    # ------------------------------------------------------------------ ground truth
    @property
    def on_demand(self) -> bool:
        """True when not real-time: every :meth:`read` renders the next frame at once."""
        return not self.realtime

    @property
    def frame_count(self) -> int:
        """Frames in one play of the scenario."""
        return len(self.timeline)

    def truth(self, position: int) -> FrameTruth:
        """What frame ``position`` (0-based, within one play) shows, with its pose and pin."""
        if not is_integer(position) or \
                not 0 <= position < len(self.timeline):
            raise InputError(f"must be a frame position from 0 to {len(self.timeline) - 1}, got {position!r}",
                             "position")
        t = self.timeline[int(position)]
        if t.step < 0:
            return t
        return replace(t, pose=self._poses[t.step], pin=self._pins[t.step])

    def position_of(self, frame) -> int:
        """The scenario position of a frame this source delivered (from its ``source_time_s``)."""
        if getattr(frame, "source_time_s", None) is None:
            raise InputError("has no source_time_s; it did not come from a ScenarioSource", "frame")
        return int(round(frame.source_time_s * self.scenario.fps))

    def step_pose(self, step: int) -> Pose:
        """``T_source_from_patient`` of step ``step``."""
        return self._poses[step]

    @property
    def fov_mask(self) -> np.ndarray:
        """(H, W) bool: the collimated field in frame pixels (renders the first exposure)."""
        return self._shot_masks()[0]

    @property
    def text_mask(self) -> np.ndarray:
        """(H, W) bool: burnt-in text and the clock / radiation-symbol area."""
        return self._shot_masks()[1] | self.overlay_mask

    @property
    def overlay_mask(self) -> np.ndarray:
        """(H, W) bool: where the clock and the radiation-on symbol can appear."""
        if self._overlay_mask is None:
            canvas = np.zeros(self._frame_shape, np.uint8)
            self._draw_overlays(canvas, "23:59:59", True, box=True)
            self._overlay_mask = canvas > 0
        return self._overlay_mask

    # ------------------------------------------------------------------ FrameSource hooks
    def _open(self) -> SourceInfo:
        self._ensure_renderer()
        self._rewind()
        self._pacer.reset()
        w, h = self.scenario.video.frame_size_px
        n_held = len(self.held_images)
        return SourceInfo(kind="sim", name=self.name, width=w, height=h, fps=self.scenario.fps, fourcc="GREY",
                          backend="simulator", requested=self._requested,
                          frame_count=None if self.loop else len(self.timeline),
                          description=f"scenario {self.scenario.name!r}: {len(self.scenario.steps)} steps, "
                                      f"{n_held} held images, {len(self.timeline) / self.scenario.fps:.0f} s")

    def _read(self):
        if self._pos >= len(self.timeline):
            if not self.loop:
                self._ended = True
                return None
            self._rewind()
        t = self.timeline[self._pos]
        image = self._frame(t)
        self._pos += 1
        if self.realtime:
            self._pacer.wait()
        return image, t.time_s, None

    def _close(self) -> None:
        self._exposures.clear()

    # ------------------------------------------------------------------ rendering
    @property
    def _frame_shape(self) -> tuple[int, int]:
        w, h = self.scenario.video.frame_size_px
        return (h, w)

    def _rewind(self) -> None:
        self._pos = 0
        self._pic_key = None
        self._pic: np.ndarray | None = None
        self._steady = np.zeros(self._frame_shape, np.uint8)
        self._live: deque = deque(maxlen=self.scenario.video.lih_average_frames)
        self._live_step = None
        self._ramp_exposure = None
        self._ramp_j = 0
        self._ramp_from = self._steady

    def _ensure_renderer(self) -> PoseCachedRenderer:
        if self._renderer is None:
            p = self._patient
            volume = p.volume if isinstance(p, DRRRenderer) else p if isinstance(p, AttenuationVolume) else \
                AttenuationVolume.from_ct(p, energy_kev=self._shot_settings.energy_kev)
            self._renderer = PoseCachedRenderer(volume)
        return self._renderer

    @property
    def video_geometry(self) -> CArmGeometry:
        """The C-arm geometry of the frame's pixels: :func:`~or_assist.core.geometry.project`
        with it and a step's pose gives frame pixels (renders the first exposure)."""
        return self._shot_masks()[2]

    def _shot_masks(self) -> tuple[np.ndarray, np.ndarray, CArmGeometry]:
        if self._masks is None:
            self._keep_masks(self._simulate(0, 0))
        return self._masks

    def _keep_masks(self, shot) -> None:
        """Field, text mask and frame geometry: the same for every shot of the scenario."""
        self._masks = (shot.fov_mask, shot.text_mask, shot.video_geometry)

    def _exposure_seed(self, exposure: int) -> int:
        state = np.random.SeedSequence([self.scenario.seed, 0, exposure]).generate_state(2, np.uint32)
        return int((int(state[0]) << 31) ^ int(state[1]))

    def _simulate(self, step: int, exposure: int):
        settings = replace(self._shot_settings, seed=self._exposure_seed(exposure))
        return simulate_shot(self._ensure_renderer(), self._poses[step], self.geometry, pin=self._pins[step],
                             settings=settings)

    def _exposure_frame(self, step: int, exposure: int) -> np.ndarray:
        frame = self._exposures.get(exposure)
        if frame is None:
            shot = self._simulate(step, exposure)
            if self._masks is None:
                self._keep_masks(shot)
            frame = shot.frame
            self._exposures[exposure] = frame
            while len(self._exposures) > 4:
                self._exposures.popitem(last=False)
        return frame

    def _picture(self, t: FrameTruth) -> np.ndarray:
        """The C-arm's picture of frame ``t`` (no overlays, no grabber noise), uint8."""
        key = {"blank": ("blank",), "live": ("live", t.exposure), "ramp": ("ramp", t.position),
               "hold": ("hold", t.held_image)}[t.phase]
        if key == self._pic_key:
            return self._pic
        if t.phase == "blank":
            pic = np.zeros(self._frame_shape, np.uint8)
        elif t.phase == "live":
            if self._live_step != t.step:
                self._live.clear()
                self._live_step = t.step
            pic = self._exposure_frame(t.step, t.exposure)
            self._live.append(pic)
        elif t.phase == "ramp":
            if self._ramp_exposure != t.exposure:
                self._ramp_exposure, self._ramp_j, self._ramp_from = t.exposure, 0, self._steady
            else:
                self._ramp_j += 1
            a = (self._ramp_j + 1) / (self.scenario.video.ramp_frames + 1)
            new = self._exposure_frame(t.step, t.exposure)
            pic = cv2.addWeighted(self._ramp_from, 1.0 - a, new, a, 0.0)
        elif self.scenario.steps[t.step].mode == "live":
            if self._live_step != t.step or not self._live:  # entered mid-way: rebuild the live run
                self._live.clear()
                n = self.scenario.video.lih_average_frames
                for e in range(max(0, t.exposure - n + 1), t.exposure + 1):
                    self._live.append(self._exposure_frame(t.step, e))
                self._live_step = t.step
            pic = np.rint(np.mean(np.stack(list(self._live)), axis=0, dtype=np.float32)).astype(np.uint8)
        else:
            pic = self._exposure_frame(t.step, t.exposure)
        if t.phase != "ramp":
            self._steady = pic
        self._pic_key, self._pic = key, pic
        return pic

    def _frame(self, t: FrameTruth) -> np.ndarray:
        """Picture + overlays + grabber noise, (H, W) uint8."""
        video = self.scenario.video
        out = self._picture(t).copy()
        clock_s = _CLOCK_START_S + int(math.floor(t.time_s))
        clock = f"{clock_s // 3600 % 24:02d}:{clock_s // 60 % 60:02d}:{clock_s % 60:02d}"
        self._draw_overlays(out, clock, t.phase == "live")
        if video.grabber_noise_grey <= 0 and video.flicker_grey <= 0:
            return out
        rng = np.random.default_rng([self.scenario.seed, 1, t.position])
        h, w = self._frame_shape
        k, dy, dx = rng.integers(0, _NOISE_BANK), rng.integers(0, _NOISE_SHIFT_PX), rng.integers(0, _NOISE_SHIFT_PX)
        noisy = out.astype(np.float32)
        noisy += self._noise_bank()[k, dy:dy + h, dx:dx + w]
        noisy += np.float32(rng.normal(0.0, video.flicker_grey) + 0.5)  # + 0.5: round, not floor
        np.clip(noisy, 0.0, 255.0, out=noisy)
        return noisy.astype(np.uint8)

    def _noise_bank(self) -> np.ndarray:
        if self._noise is None:
            h, w = self._frame_shape
            rng = np.random.default_rng([self.scenario.seed, 2])
            self._noise = rng.standard_normal((_NOISE_BANK, h + _NOISE_SHIFT_PX, w + _NOISE_SHIFT_PX),
                                              dtype=np.float32) * np.float32(self.scenario.video.grabber_noise_grey)
        return self._noise

    def _draw_overlays(self, frame: np.ndarray, clock: str, live: bool, box: bool = False) -> None:
        """The clock and (during live fluoroscopy) a radiation-on symbol, white, in place.
        ``box`` draws their whole areas instead (for :attr:`overlay_mask`)."""
        video = self.scenario.video
        if not (video.clock or video.live_indicator):
            return
        h, w = frame.shape[:2]
        font, scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, h / 720.0 * 0.8)
        thick = max(1, int(round(h / 400.0)))
        (tw, th), base = cv2.getTextSize("00:00:00", font, scale, thick)
        r = max(3, th // 2 + 1)
        margin = max(4, int(round(0.015 * h)))
        gap = 2 * r + margin
        width = (tw if video.clock else 0) + (gap if video.live_indicator else 0)
        pos = video.overlay_position
        x0 = {"top-left": margin, "bottom-left": margin}.get(pos, (w - width) // 2 if pos == "top" else
                                                               w - margin - width)
        y = margin + th if pos in ("top-right", "top-left", "top") else h - margin - base
        x_clock = x0 + (gap if video.live_indicator else 0)
        if box:
            cv2.rectangle(frame, (x0 - 2, y - th - 2), (x0 + width + 2, y + base + 2), 255, -1)
            return
        if video.clock:
            cv2.putText(frame, clock, (x_clock, y), font, scale, 255, thick, cv2.LINE_AA)
        if video.live_indicator and live:
            cv2.circle(frame, (x0 + r, y - th // 2), r, 255, -1, cv2.LINE_AA)


