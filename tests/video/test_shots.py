"""New-shot detection: one event per held exposure, not per frame; noise, live and overlays ignored."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest

from or_assist.errors import InputError
from or_assist.render.drr import AttenuationVolume
from or_assist.sim.scenario.player import ScenarioSource
from or_assist.render.pose_cache import PoseCachedRenderer
from or_assist.sim.scenario.spec import load_sample_case
from or_assist.sim.scenario.model import PinState, Scenario, ScenarioStep, VideoSettings
from or_assist.video.shots import ShotDetector, ShotDetectorSettings
from or_assist.video.sources.base import Frame

W, H = 480, 360


class Stream:
    """A synthetic C-arm video: smooth 'anatomy', correlated photon noise per exposure,
    a round field, a clock over the image, grabber noise and flicker per frame."""

    def __init__(self, seed=0, grabber_noise=1.2, flicker=0.3, clock=True):
        self.rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:H, 0:W]
        self.fov = (xx - W / 2 + 0.5) ** 2 + (yy - H / 2 + 0.5) ** 2 <= (0.48 * H) ** 2
        self.grabber_noise, self.flicker, self.clock = grabber_noise, flicker, clock
        self.index = 0
        self.scene = self.new_scene()

    def new_scene(self) -> np.ndarray:
        field = cv2.GaussianBlur(self.rng.standard_normal((H, W)).astype(np.float32), (0, 0), 12)
        return 128.0 + 60.0 * field / field.std()

    def exposure(self, scene=None) -> np.ndarray:
        """A new exposure of ``scene``: fresh photon noise (8 grey levels, 1.5 px correlation)."""
        noise = cv2.GaussianBlur(self.rng.standard_normal((H, W)).astype(np.float32), (0, 0), 1.5)
        img = (self.scene if scene is None else scene) + 8.0 * noise / noise.std()
        return np.where(self.fov, np.clip(img, 0, 255), 0.0).astype(np.float32)

    def frame(self, picture: np.ndarray | None) -> Frame:
        """Picture (None = black screen) + clock + grabber noise -> Frame."""
        img = np.zeros((H, W), np.float32) if picture is None else picture.copy()
        if self.clock:  # centred at the top, over the image: changes every 10 frames
            s = 37000 + self.index // 10
            text = np.zeros((H, W), np.uint8)
            cv2.putText(text, f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}", (190, 40),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2, cv2.LINE_AA)
            img = np.maximum(img, text.astype(np.float32))
        img += self.rng.standard_normal(img.shape, dtype=np.float32) * np.float32(self.grabber_noise)
        img += np.float32(self.rng.normal(0, self.flicker))
        f = Frame(np.clip(np.rint(img), 0, 255).astype(np.uint8), self.index, self.index / 25.0, self.index / 25.0)
        self.index += 1
        return f


def run(detector, frames, **kwargs) -> list:
    return [e for f in frames if (e := detector.update(f, **kwargs)) is not None]


def test_static_noisy_hold_gives_one_event_only():
    s = Stream()
    picture = s.exposure()
    events = run(ShotDetector(), [s.frame(picture) for _ in range(150)])
    assert [(e.index, e.exposure_number, e.stable_since_index) for e in events] == [(1, 1, 0)]
    assert events[0].image.shape == (H, W) and events[0].kind == "hold"


def test_one_event_per_exposure_with_live_hold_and_latency():
    """blank -> shot -> live 40 frames -> hold -> the same scene re-exposed -> a new scene."""
    s = Stream(seed=1)
    frames, first_stable = [], []
    frames += [s.frame(None) for _ in range(10)]
    first_stable.append(len(frames))
    held = s.exposure()
    frames += [s.frame(held) for _ in range(30)]
    for _ in range(40):  # live fluoroscopy: a new exposure each frame
        frames.append(s.frame(s.exposure()))
    first_stable.append(len(frames))
    held = s.exposure()
    frames += [s.frame(held) for _ in range(30)]
    first_stable.append(len(frames))  # a new exposure of the same scene: only photon noise differs
    held = s.exposure()
    frames += [s.frame(held) for _ in range(30)]
    s.scene = s.new_scene()
    first_stable.append(len(frames))
    held = s.exposure()
    frames += [s.frame(held) for _ in range(30)]
    detector = ShotDetector()
    events = run(detector, frames)
    assert [e.exposure_number for e in events] == [1, 2, 3, 4]
    latency = [e.index - f for e, f in zip(events, first_stable)]
    assert all(1 <= x <= 2 for x in latency), latency
    assert [e.stable_since_index for e in events] == first_stable
    assert 0.01 < detector.noise_grey < 0.3


def test_live_fluoroscopy_alone_gives_no_event():
    s = Stream(seed=2)
    detector = ShotDetector()
    events = run(detector, [s.frame(s.exposure()) for _ in range(100)])
    assert events == []
    assert detector.last_difference_grey > 3 * detector.settings.stable_factor * detector.noise_grey


def test_clock_over_the_image_and_flicker_give_no_event():
    s = Stream(seed=3, flicker=2.0)
    picture = s.exposure()
    frames = [s.frame(picture) for _ in range(100)]  # 9 clock ticks
    events = run(ShotDetector(), frames)
    assert len(events) == 1
    # each tick is a real change of the picture where the clock is, and only there
    box = (slice(10, 50), slice(180, 320))
    changed_px = [np.count_nonzero(np.abs(frames[i].image[box].astype(float) - frames[i - 1].image[box]) > 60)
                  for i in range(1, 100)]
    assert all((changed_px[i - 1] > 50) == (i % 10 == 0) for i in range(1, 100))


def test_an_overlay_box_over_part_of_the_image_gives_no_event():
    """A menu or dose box drawn over about a tenth of the held image, then removed."""
    s = Stream(seed=6)
    picture = s.exposure()
    boxed = picture.copy()
    boxed[200:300, 60:200] = 240.0
    frames = [s.frame(picture) for _ in range(30)] + [s.frame(boxed) for _ in range(30)] + \
        [s.frame(picture) for _ in range(30)]
    assert [e.index for e in run(ShotDetector(), frames)] == [1]


def test_black_screen_is_no_image_and_the_same_image_after_it_is_not_new():
    s = Stream(seed=4, clock=False)
    picture = s.exposure()
    detector = ShotDetector()
    frames = [s.frame(None) for _ in range(20)] + [s.frame(picture) for _ in range(20)] + \
        [s.frame(None) for _ in range(5)] + [s.frame(picture) for _ in range(20)]
    events = run(detector, frames)
    assert [e.index for e in events] == [21]


def test_masks_frame_size_change_and_colour_frames():
    s = Stream(seed=5)
    detector = ShotDetector()
    text = np.zeros((H, W), bool)
    text[10:50, 180:320] = True  # the clock
    picture = s.exposure()
    events = run(detector, [s.frame(picture) for _ in range(30)], fov_mask=s.fov, ignore_mask=text)
    assert len(events) == 1
    big = cv2.resize(picture, (2 * W, 2 * H))
    frames = [Frame(np.clip(big + np.random.default_rng(i).normal(0, 1.2, big.shape), 0, 255).astype(np.uint8),
                    100 + i, 0.0) for i in range(5)]
    events = run(detector, frames)  # a new video mode: starts afresh
    assert [e.index for e in events] == [101]
    bgr = [Frame(cv2.cvtColor(f.image, cv2.COLOR_GRAY2BGR), f.index + 10, 0.0) for f in frames]
    detector.reset()
    assert [e.index for e in run(detector, bgr)] == [111]


@pytest.mark.parametrize("kwargs, field", [
    (dict(work_width_px=4), "work_width_px"), (dict(blur_sigma_px=-1.0), "blur_sigma_px"),
    (dict(block_px=1), "block_px"), (dict(corner_fraction=(0.2,)), "corner_fraction"),
    (dict(corner_fraction=(0.2, 0.7)), "corner_fraction"), (dict(stable_factor=math.nan), "stable_factor"),
    (dict(change_factor=2.0), "change_factor"), (dict(stable_frames=0), "stable_frames"),
    (dict(min_active_blocks=True), "min_active_blocks")])
def test_settings_reject_bad_values(kwargs, field):
    with pytest.raises(InputError, match=field):
        ShotDetectorSettings(**kwargs)


def test_update_rejects_bad_input():
    detector = ShotDetector()
    good = Frame(np.zeros((H, W), np.uint8), 0, 0.0)
    with pytest.raises(InputError, match="expected a Frame"):
        detector.update(np.zeros((H, W), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        detector.update(Frame(np.zeros((H, W), np.float32), 0, 0.0))
    detector.update(good)
    with pytest.raises(InputError, match="fov_mask"):
        detector.update(replace(good, index=1), fov_mask=np.ones((10, 10), bool))
    coarse = ShotDetector(ShotDetectorSettings(block_px=64, work_width_px=16))
    coarse.update(good)
    with pytest.raises(InputError, match="too small"):
        coarse.update(replace(good, index=1))
    with pytest.raises(InputError, match="settings"):
        ShotDetector({"stable_frames": 2})


# ---------------------------------------------------------------- on the shot simulator
@pytest.fixture(scope="module")
def simulated():
    """A scripted session on the sample pelvis: shots, live -> hold, a repeated view, the
    clock over the image; 480 x 360 frames of a 256 px detector."""
    ct, plan, geometry = load_sample_case()
    video = VideoSettings(frame_size_px=(W, H), detector_size_px=256, supersample=1, overlay_position="top")
    steps = (ScenarioStep("L1", "lateral", pin=PinState(0.3), hold_s=1.2),
             ScenarioStep("L1", "inlet", pin=PinState(0.4), mode="live", live_s=1.0, hold_s=1.2),
             ScenarioStep("L1", "inlet", pin=PinState(0.4), hold_s=1.2),
             ScenarioStep("L1", "outlet", pin=PinState(0.5), hold_s=1.2),
             ScenarioStep("L1", "outlet", pin=PinState(0.7), mode="live", live_s=0.6, hold_s=1.6))
    source = ScenarioSource(Scenario(steps, fps=25.0, start_blank_s=0.4, video=video, seed=11),
                            PoseCachedRenderer(AttenuationVolume.from_ct(ct)), plan, geometry)
    with source:
        frames = []
        while (f := source.read()) is not None:
            frames.append(f)
    return source, frames


@pytest.mark.parametrize("masks", [False, True])
def test_simulated_session_one_event_per_held_image(simulated, masks):
    source, frames = simulated
    kwargs = dict(fov_mask=source.fov_mask, ignore_mask=source.text_mask) if masks else {}
    events = run(ShotDetector(), frames, **kwargs)
    held = source.held_images
    assert len(held) == 5 and sum(h.after_live for h in held) == 2
    got = [source.truth(source.position_of(frames[e.index])) for e in events]
    assert [t.held_image for t in got] == [h.number for h in held]
    latency = [e.index - h.first for e, h in zip(events, held)]
    assert all(1 <= x <= 2 for x in latency), latency


def test_simulated_live_frames_are_never_stable(simulated):
    source, frames = simulated
    detector = ShotDetector()
    for f in frames:
        detector.update(f)
        t = source.truth(source.position_of(f))
        if t.phase == "live" and source.truth(t.position - 1).phase == "live":
            assert detector.last_difference_grey > detector.settings.stable_factor * detector.noise_grey


def _still(stream: Stream, picture, index: int, exposure) -> Frame:
    f = stream.frame(picture)
    return replace(f, index=index, exposure=exposure)


def test_stills_are_shots_at_once_and_video_single_frames_are_not():
    """A folder of stills: each new exposure number fires on its own frame; a repeat of
    the number, the same image under a new number and a black still do not; a pin on an
    otherwise identical noise-free still does. As video frames (no exposure number) the
    same single frames never hold, so they give no event."""
    s = Stream(seed=7, grabber_noise=0.0, flicker=0.0, clock=False)
    a = s.exposure()
    s.scene = s.new_scene()
    b = s.exposure()
    pinned = b.copy()
    cv2.line(pinned, (200, 120), (300, 260), 20.0, 4)   # a guide pin, nothing else changed
    frames = [_still(s, a, 0, 0), _still(s, a, 1, 0), _still(s, b, 2, 1), _still(s, b, 3, 2),
              _still(s, pinned, 4, 3), _still(s, None, 5, 4), _still(s, pinned, 6, 5)]
    detector = ShotDetector()
    events = run(detector, frames)
    assert [e.index for e in events] == [0, 2, 4]
    assert [e.stable_since_index for e in events] == [0, 2, 4]
    assert [e.exposure_number for e in events] == [1, 2, 3]
    assert detector.event_count == 3
    s.scene = s.new_scene()
    c = _still(s, s.exposure(), 7, 6)
    video = [replace(f, exposure=None) for f in (frames[0], frames[2], c)]
    assert run(ShotDetector(), video) == []
