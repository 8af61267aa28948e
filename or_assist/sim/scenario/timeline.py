"""The frame-by-frame ground truth of a scenario, without rendering.

:func:`scenario_timeline` turns a :class:`~or_assist.sim.scenario.model.Scenario` into one
:class:`FrameTruth` per video frame (which exposure is shown, whether the picture equals
the previous frame's, which held image it belongs to); :func:`held_images` lists the held
images, the ground truth of new-shot detection.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from or_assist.sim.scenario.model import Scenario

__all__ = ["FrameTruth", "HeldImage", "scenario_timeline", "held_images"]


@dataclass(frozen=True)
class FrameTruth:
    """What one video frame of a scenario shows.

    Attributes
    ----------
    position : int
        Frame number in the scenario (0-based); ``time_s = position / fps``.
    time_s : float
    step : int
        Index into ``Scenario.steps``; -1 before the first step.
    phase : {'blank', 'live', 'ramp', 'hold'}
        'ramp': a shot building up; 'hold': last-image-hold.
    exposure : int or None
        The exposure shown (the incoming one during a ramp, the last live one while
        holding after live fluoroscopy); None on the blank screen.
    stable : bool
        The picture equals the previous frame's (only grabber noise and overlays differ).
    held_image : int or None
        The held image (0, 1, ...) this frame shows, for every frame that shows it
        (with ``lih_average_frames == 1`` this includes the last live frame).
    held_since : int or None
        Position of that held image's first frame (where its picture became stable).
    pose, pin : Pose or None, GuidePin or None
        Filled by :class:`~or_assist.sim.scenario.player.ScenarioSource` (None in a bare
        timeline).
    """

    position: int
    time_s: float
    step: int
    phase: str
    exposure: int | None
    stable: bool
    held_image: int | None = None
    held_since: int | None = None
    pose: object = None
    pin: object = None


@dataclass(frozen=True)
class HeldImage:
    """One held image (ground truth of new-shot detection): frames ``first``..``last``."""

    number: int
    step: int
    exposure: int
    first: int
    last: int
    after_live: bool


def scenario_timeline(scenario: Scenario) -> list[FrameTruth]:
    """One :class:`FrameTruth` per video frame, without rendering (module doc)."""
    fps, video = scenario.fps, scenario.video
    out: list[FrameTruth] = []

    def add(step, phase, exposure, stable, held=None, since=None):
        out.append(FrameTruth(len(out), len(out) / fps, step, phase, exposure, stable, held, since))

    for _ in range(scenario._frames(scenario.start_blank_s)):
        add(-1, "blank", None, bool(out))
    exposure = held = 0
    for k, step in enumerate(scenario.steps):
        n_hold = scenario._frames(step.hold_s)
        if step.mode == "live":
            for _ in range(max(1, scenario._frames(step.live_s))):
                add(k, "live", exposure, False)
                exposure += 1
            if n_hold == 0:
                continue
            since = len(out)
            if video.lih_average_frames == 1:  # the last live frame is the held picture
                since -= 1
                out[-1] = replace(out[-1], held_image=held, held_since=since)
            for j in range(n_hold):
                add(k, "hold", exposure - 1, j > 0 or video.lih_average_frames == 1, held, since)
        else:
            for _ in range(video.ramp_frames):
                add(k, "ramp", exposure, False)
            since = len(out)
            for j in range(n_hold):
                add(k, "hold", exposure, j > 0, held, since)
            exposure += 1
        held += 1
    return out


def held_images(timeline: list[FrameTruth]) -> list[HeldImage]:
    """The held images of a timeline, in order, with their first and last frames."""
    found: dict[int, HeldImage] = {}
    for t in timeline:
        if t.held_image is None:
            continue
        h = found.get(t.held_image)
        if h is None:
            found[t.held_image] = HeldImage(t.held_image, t.step, t.exposure, t.held_since, t.position,
                                            t.phase == "live" or (t.position > 0 and
                                                                  timeline[t.position - 1].phase == "live"))
        else:
            found[t.held_image] = replace(h, last=t.position)
    return [found[k] for k in sorted(found)]
