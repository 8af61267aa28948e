"""Scripted C-arm sessions: timeline ground truth, rendering, determinism, files, spec factory."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest

from or_assist.core.carm import carm_angles_from_pose, patient_axes
from or_assist.core.geometry import project
from or_assist.core.view_poses import plan_view_pose
from or_assist.errors import InputError, SchemaError
from or_assist.render.drr import AttenuationVolume
from or_assist.video.sources.spec import open_source
from or_assist.sim.scenario.player import ScenarioSource
from or_assist.render.pose_cache import PoseCachedRenderer
from or_assist.sim.scenario.spec import load_sample_case, scenario_source_from_spec
from or_assist.sim.scenario.model import (
    SCENARIO_SCHEMA,
    PinState,
    Scenario,
    ScenarioStep,
    VideoSettings,
    load_scenario,
    save_scenario,
)
from or_assist.sim.scenario.timeline import held_images, scenario_timeline
from or_assist.sim.scenario.scripts import demo_scenario, session_scenario

SMALL = VideoSettings(frame_size_px=(480, 360), detector_size_px=256, supersample=1)
QUIET = replace(SMALL, grabber_noise_grey=0.0, flicker_grey=0.0, clock=False, live_indicator=False)


@pytest.fixture(scope="module")
def case():
    return load_sample_case()


@pytest.fixture(scope="module")
def renderer(case):
    """One DRR cache for every source of this module."""
    return PoseCachedRenderer(AttenuationVolume.from_ct(case[0]))


def scripted(video=SMALL, seed=0, fps=10.0) -> Scenario:
    """Blank, a shot, live -> hold, a repeated shot of the same view, a turned live view."""
    steps = (ScenarioStep("L1", "lateral", pin=PinState(0.3, (0.0, 0.0, 3.0), 4.0), hold_s=0.5),
             ScenarioStep("L1", "inlet", pin=PinState(0.4), mode="live", live_s=0.5, hold_s=0.5),
             ScenarioStep("L1", "inlet", pin=PinState(0.4), hold_s=0.4),
             ScenarioStep("L2", "lateral", orbital_offset_deg=3.0, pin=None, mode="live", live_s=0.3, hold_s=0.6))
    return Scenario(steps, fps=fps, seed=seed, start_blank_s=0.3, video=video)


def play(source, n=None) -> list:
    frames = []
    with source:
        while (n is None or len(frames) < n) and (f := source.read()) is not None:
            frames.append(f)
    return frames


# ---------------------------------------------------------------- timeline (no rendering)
def test_timeline_phases_and_held_images():
    t = scenario_timeline(scripted())
    phases = "".join(x.phase[0] for x in t)
    # 3 blank, ramp + 5 hold, 5 live + 5 hold, ramp + 4 hold, 3 live + 6 hold
    assert phases == "bbb" + "r" + "h" * 5 + "l" * 5 + "h" * 5 + "r" + "h" * 4 + "l" * 3 + "h" * 6
    assert [x.position for x in t] == list(range(len(t)))
    assert t[4].exposure == 0 and t[4].stable is False and t[5].stable is True
    live = [x for x in t if x.phase == "live"]
    assert [x.exposure for x in live] == [1, 2, 3, 4, 5, 7, 8, 9]  # exposure 6 is the repeated shot
    assert not any(x.stable for x in live)
    held = held_images(t)
    assert [(h.number, h.step, h.exposure, h.first, h.after_live) for h in held] == [
        (0, 0, 0, 4, False), (1, 1, 5, 14, True), (2, 2, 6, 20, False), (3, 3, 9, 27, True)]
    assert held[-1].last == len(t) - 1
    for h in held:  # a held image's frames all name it; only its first frame is not stable
        frames = [x for x in t if x.held_image == h.number]
        assert [x.position for x in frames] == list(range(h.first, h.last + 1))
        assert [x.stable for x in frames] == [False] + [True] * (len(frames) - 1)


def test_timeline_without_ramp_or_averaging_holds_the_last_live_frame():
    t = scenario_timeline(scripted(video=replace(SMALL, ramp_frames=0, lih_average_frames=1)))
    held = held_images(t)
    last_live = max(x.position for x in t if x.phase == "live" and x.step == 1)
    assert held[1].first == last_live and t[last_live].held_image == 1
    assert t[last_live + 1].stable is True and t[last_live + 1].phase == "hold"
    assert held[0].first == 3  # the shot's first frame: no ramp


def test_session_scenario_has_enough_shots_and_live_runs(case):
    plan = case[1]
    s = session_scenario(plan, duration_s=600.0, seed=3)
    t = scenario_timeline(s)
    assert len(t) / s.fps >= 600.0
    held = held_images(t)
    assert len(held) >= 40
    assert sum(h.after_live for h in held) >= 8
    assert {st.implant for st in s.steps} == {i.id for i in plan.implants}
    assert session_scenario(plan, duration_s=600.0, seed=3) == s
    assert session_scenario(plan, duration_s=600.0, seed=4) != s
    with pytest.raises(InputError, match="hold_range_s"):
        session_scenario(plan, hold_range_s=(5.0, 2.0))


def test_demo_scenario_corrects_a_deviating_pin(case):
    plan = case[1]
    s = demo_scenario(plan)
    assert len(s.steps) == 6 * len(plan.implants)
    first = s.steps[:6]
    assert [st.view for st in first] == ["lateral", "inlet", "outlet"] * 2
    advance = [st.pin.advance_fraction for st in first]
    assert advance == sorted(advance) and advance[-1] == 1.0
    assert first[0].pin.tilt_deg > 2.0 and first[-1].pin.tilt_deg == 0.0
    assert any(st.mode == "live" for st in first) and any(st.mode == "shot" for st in first)
    with pytest.raises(InputError, match="no implant 'X9'"):
        demo_scenario(plan, implants=["X9"])


# ---------------------------------------------------------------- rendering
@pytest.fixture(scope="module")
def noise_free_frames(case, renderer):
    ct, plan, geometry = case
    source = ScenarioSource(scripted(video=QUIET), renderer, plan, geometry)
    return source, play(source)


def test_ground_truth_matches_the_pictures(noise_free_frames):
    """Without grabber noise and overlays a stable frame is bit-identical to the previous one."""
    source, frames = noise_free_frames
    assert len(frames) == source.frame_count
    for prev, frame in zip(frames, frames[1:]):
        t = source.truth(source.position_of(frame))
        same = np.array_equal(prev.image, frame.image)
        assert same == t.stable, (t.position, t.phase)
    fov = source.fov_mask
    blank = frames[0].image
    assert blank.max() == 0
    image = frames[5].image
    assert image[fov].mean() > 60 and image[~fov & ~source.text_mask].max() == 0
    # the held image after live fluoroscopy is the mean of the last four exposures: less noisy
    t = source.timeline
    last_live = max(x.position for x in t if x.phase == "live" and x.step == 1)
    assert frames[last_live + 1].image.astype(float)[fov].std() < frames[last_live].image.astype(float)[fov].std()


def test_truth_carries_pose_and_pin(noise_free_frames, case):
    source, frames = noise_free_frames
    ct, plan, geometry = case
    t = source.truth(8)
    assert t.step == 0 and t.pin is not None
    assert t.pose.allclose(plan_view_pose(plan, "L1", "lateral", geometry=source.geometry))
    # the turned view: the same isocentre, 3 deg more orbital
    t3 = source.truth(source.held_images[3].first)
    axes = patient_axes(plan.landmarks)
    base = plan_view_pose(plan, "L2", "lateral", geometry=source.geometry)
    turned, planned = carm_angles_from_pose(t3.pose, axes=axes), carm_angles_from_pose(base, axes=axes)
    assert turned.orbital_deg - planned.orbital_deg == pytest.approx(3.0, abs=1e-6)
    assert turned.tilt_deg == pytest.approx(planned.tilt_deg, abs=1e-6)
    s2i = source.geometry.source_to_isocenter_mm
    assert np.allclose(t3.pose.source_position_lps_mm + s2i * t3.pose.beam_direction_lps,
                       base.source_position_lps_mm + s2i * base.beam_direction_lps)  # same isocentre
    assert t3.pin is None
    # the steel pin is where the truth says: dark along its projected shaft
    pin = t.pin
    shaft = pin.tip_lps_mm + np.linspace(5.0, 25.0, 5)[:, None] * (pin.back_lps_mm - pin.tip_lps_mm) / \
        np.linalg.norm(pin.back_lps_mm - pin.tip_lps_mm)
    uv = np.rint(project(shaft, t.pose, source.video_geometry)).astype(int)
    image = frames[8].image
    assert all(source.fov_mask[v, u] for u, v in uv)
    assert np.all(image[uv[:, 1], uv[:, 0]] < np.median(image[source.fov_mask]) - 40)


def test_same_seed_same_video_other_seed_other_noise(case, renderer):
    ct, plan, geometry = case
    a = play(ScenarioSource(scripted(seed=5), renderer, plan, geometry), 20)
    b = play(ScenarioSource(scripted(seed=5), renderer, plan, geometry), 20)
    c = play(ScenarioSource(scripted(seed=6), renderer, plan, geometry), 20)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert [x.source_time_s for x in a] == pytest.approx([i / 10.0 for i in range(20)])
    differ = [not np.array_equal(x.image, z.image) for x, z in zip(a, c)]
    assert all(differ)  # grabber noise differs on every frame
    # another seed: other photon noise in every exposure, far above the grabber noise of a blank frame
    source = ScenarioSource(scripted(), renderer, plan, geometry)
    fov = source.fov_mask
    assert source.truth(12).phase == "live" and source.truth(1).phase == "blank"
    live = np.abs(a[12].image.astype(float) - c[12].image.astype(float))[fov].mean()
    blank = np.abs(a[1].image.astype(float) - c[1].image.astype(float))[fov].mean()
    assert live > 5.0 > 1.0 > blank


def test_grabber_noise_is_small_next_to_a_new_exposure(case, renderer):
    ct, plan, geometry = case
    source = ScenarioSource(scripted(video=SMALL), renderer, plan, geometry)
    frames = play(source)
    fov = source.fov_mask & ~source.text_mask

    def mad(i):
        return np.abs(frames[i].image.astype(float) - frames[i - 1].image.astype(float))[fov].mean()

    stable = [i for i in range(1, len(frames)) if source.truth(i).stable and source.truth(i).phase == "hold"]
    live = [i for i in range(1, len(frames)) if source.truth(i).phase == "live" and source.truth(i - 1).phase == "live"]
    assert all(0.5 < mad(i) < 2.5 for i in stable)  # 1.2 grey levels of Gaussian noise, quantised
    assert all(mad(i) > 6.0 for i in live)  # fresh photon noise


def test_clock_ticks_every_second_and_the_symbol_shows_live(case, renderer):
    ct, plan, geometry = case
    source = ScenarioSource(scripted(video=replace(QUIET, clock=True, live_indicator=True)), renderer, plan,
                            geometry)
    frames = play(source)
    overlay = source.overlay_mask
    assert overlay.any() and not (overlay & source.fov_mask).any()  # top-right corner, outside the field
    changes = {i for i in range(1, len(frames))
               if not np.array_equal(frames[i].image[overlay], frames[i - 1].image[overlay])}
    live = {i for i in range(len(frames)) if source.truth(i).phase == "live"}
    toggles = {i for i in range(1, len(frames)) if (i in live) != (i - 1 in live)}
    ticks = set(range(10, len(frames), 10))  # 10 fps: a new second every 10 frames
    assert changes == ticks | toggles
    outside = ~overlay
    for i in range(1, len(frames)):  # overlays change nothing else
        if source.truth(i).stable:
            assert np.array_equal(frames[i].image[outside], frames[i - 1].image[outside])


def test_realtime_pacing_and_loop(case, renderer):
    ct, plan, geometry = case
    short = Scenario((ScenarioStep("L1", "lateral", hold_s=0.3),), fps=25.0, start_blank_s=0.0, video=SMALL)
    source = ScenarioSource(short, renderer, plan, geometry, realtime=True, loop=True)
    with source:
        info = source.info
        source.read()
        t0 = time.monotonic()
        frames = [source.read() for _ in range(2 * source.frame_count)]
        elapsed = time.monotonic() - t0
    assert info.frame_count is None and info.fps == 25.0 and (info.width, info.height) == (480, 360)
    assert elapsed >= (len(frames) - 1) / 25.0 - 0.02
    n = source.frame_count
    assert [f.index for f in frames] == list(range(1, 2 * n + 1))
    assert frames[n - 1].source_time_s == 0.0  # looped back to the start
    ended = ScenarioSource(short, renderer, plan, geometry)
    assert len(play(ended)) == n and ended.ended


def test_pose_cached_renderer_returns_copies(case, renderer):
    ct, plan, geometry = case
    pose = plan_view_pose(plan, "L3", "outlet", geometry=geometry)
    small = geometry.downsampled(4)
    misses = renderer.cache_misses
    a = renderer.render(pose, small)
    a += 100.0
    b = renderer.render(pose, small)
    assert renderer.cache_misses == misses + 1 and renderer.cache_hits >= 1
    assert np.all(a - b == pytest.approx(100.0))


# ---------------------------------------------------------------- bad input
def test_source_names_the_step_with_an_unknown_implant(case, renderer):
    ct, plan, geometry = case
    bad = Scenario((ScenarioStep("L1", "lateral"), ScenarioStep("X7", "inlet")), video=SMALL)
    with pytest.raises(InputError, match=r"steps\[1\].*no implant 'X7'"):
        ScenarioSource(bad, renderer, plan, geometry)


@pytest.mark.parametrize("kwargs, field", [
    (dict(view="sideways"), "view"), (dict(mode="movie"), "mode"), (dict(mode="live", live_s=0.0), "live_s"),
    (dict(hold_s=-1.0), "hold_s"), (dict(orbital_offset_deg=45.0), "orbital_offset_deg"),
    (dict(pin="deep"), "pin")])
def test_step_rejects_bad_fields(kwargs, field):
    with pytest.raises(InputError, match=field):
        ScenarioStep(**{"implant": "L1", "view": "lateral", **kwargs})


@pytest.mark.parametrize("kwargs, field", [
    (dict(advance_fraction=2.0), "advance_fraction"), (dict(offset_mm=(1.0, 2.0)), "offset_mm"),
    (dict(tilt_deg=float("nan")), "tilt_deg")])
def test_pin_state_rejects_bad_fields(kwargs, field):
    with pytest.raises(InputError, match=field):
        PinState(**kwargs)


@pytest.mark.parametrize("kwargs, field", [
    (dict(frame_size_px=(480,)), "frame_size_px"), (dict(detector_size_px=8), "detector_size_px"),
    (dict(overlay_position="middle"), "overlay_position"), (dict(lih_average_frames=0), "lih_average_frames"),
    (dict(grabber_noise_grey=-1.0), "grabber_noise_grey"), (dict(clock="yes"), "clock")])
def test_video_settings_reject_bad_fields(kwargs, field):
    with pytest.raises(InputError, match=field):
        VideoSettings(**kwargs)


def test_scenario_rejects_a_shot_shorter_than_a_frame():
    with pytest.raises(InputError, match=r"steps\[0\].hold_s"):
        Scenario((ScenarioStep("L1", "lateral", hold_s=0.01),), fps=25.0)


def test_truth_rejects_positions_outside_the_scenario(noise_free_frames):
    source, _ = noise_free_frames
    with pytest.raises(InputError, match="position"):
        source.truth(source.frame_count)


# ---------------------------------------------------------------- files and specs
def test_file_round_trip(tmp_path, case):
    s = replace(demo_scenario(case[1]), plan_path=tmp_path / "plans" / "p.json")
    path = save_scenario(s, tmp_path / "s" / "demo.json")
    doc = json.loads(path.read_text())
    assert doc["schema"] == SCENARIO_SCHEMA and doc["plan"] == "../plans/p.json"
    back = load_scenario(path)
    assert back.steps == s.steps and back.video == s.video and back.fps == s.fps
    assert back.plan_path.resolve() == s.plan_path.resolve() and back.geometry_path is None


def _doc(**changes):
    doc = {"schema": SCENARIO_SCHEMA, "steps": [{"implant": "L1", "view": "lateral", "hold_s": 2.0}]}
    doc.update(changes)
    return doc


@pytest.mark.parametrize("doc, expected", [
    (_doc(schema="or_assist.scenario/9"), "unknown schema"),
    ({"schema": SCENARIO_SCHEMA}, "missing field 'steps'"),
    (_doc(steps=[]), "'steps' must be a non-empty list"),
    (_doc(steps=[{"implant": "L1"}]), r"steps\[0\]: missing field 'view'"),
    (_doc(steps=[{"implant": "L1", "view": "lateral", "speed": 2}]), r"steps\[0\]: unknown field\(s\) speed"),
    (_doc(steps=[{"implant": "L1", "view": "lateral", "mode": "live"}]), r"steps\[0\]: field 'live_s'"),
    (_doc(steps=[{"implant": "L1", "view": "lateral", "pin": {"advance_fraction": "far"}}]),
     r"steps\[0\].pin: field 'advance_fraction'"),
    (_doc(video={"frame_size_px": [10, 10]}), "video: field 'frame_size_px'"),
    (_doc(video={"colour": True}), r"unknown field\(s\) colour"),
    (_doc(fps=0), "field 'fps'"),
    (_doc(plan=3), "field 'plan' must be a path"),
    (_doc(fsp=25), r"unknown field\(s\) fsp"),
])
def test_file_errors_name_file_and_field(tmp_path, doc, expected):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match=expected) as err:
        load_scenario(path)
    assert str(path) in str(err.value)


def test_spec_factory_plays_a_scenario_file(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps(_doc(video={"detector_size_px": 128, "supersample": 1}, start_blank_s=0.0)))
    source = open_source(f"sim:{path}", realtime=False, width=320, height=240, fourcc="MJPG", loop=None)
    assert isinstance(source, ScenarioSource) and not source.realtime
    with source:
        info = source.info
        frame = source.read()
    assert (info.kind, info.width, info.height, info.frame_count) == ("sim", 320, 240, 51)
    assert info.mismatches() == ["fourcc: requested MJPG, delivered GREY"]
    assert frame.image.shape == (240, 320) and frame.image[source.fov_mask].mean() > 20


@pytest.mark.parametrize("spec, options, expected", [
    ("demo", {}, "expected 'sim:demo'"), ("sim:", {}, "expected 'sim:demo'"),
    ("sim:demo", {"brightness": 3}, r"unknown option\(s\) brightness"),
    ("sim:/no/such/scenario.json", {}, "file not found"),
    ("sim:demo", {"realtime": "no"}, "option 'realtime': must be true or false"),
    ("sim:demo", {"duration_s": 60.0}, "sim:session only")])
def test_spec_factory_rejects_bad_specs(spec, options, expected):
    with pytest.raises(InputError, match=expected):
        scenario_source_from_spec(spec, **options)
