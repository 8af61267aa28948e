"""Replays count every shot: a folder of stills, an MP4 file and an HTTP MJPEG stream run
headless (:func:`or_assist.live.run.run_headless`) into a real case log.

The shots are synthetic fluoroscopy-like images (smooth anatomy, correlated photon noise,
a round field). The registrar is a stand-in that takes a set time and is never confident:
what is tested is that no shot is lost or counted twice while one registers, and a real
registration's duration depends on the machine (the view recognition with the real
registrar is tested in ``test_views.py``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from or_assist.core.geometry import CArmGeometry
from or_assist.errors import InputError
from or_assist.live.pipeline import LivePipeline
from or_assist.live.run import LiveCase, run_headless
from or_assist.register.pipeline import RegistrationResult
from or_assist.session.caselog import CaseLog
from or_assist.video.sources.spec import open_source
from tests.video.mjpeg_server import MjpegServer

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the display workers' test (real Qt, no window)

W, H = 320, 240


@pytest.fixture(scope="module")
def plan():
    from or_assist.core.plan import load_plan
    from or_assist.sim.sample import build_sample_data

    return load_plan(build_sample_data()["plan"])


def _geometry() -> CArmGeometry:
    return CArmGeometry((W, H), 1000.0, (0.9, 0.9), (W / 2, H / 2), 600.0)


def _shots(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` different exposures: smooth anatomy with photon noise in a round field."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    fov = (xx - W / 2 + 0.5) ** 2 + (yy - H / 2 + 0.5) ** 2 <= (0.47 * H) ** 2
    out = []
    for _ in range(n):
        field = cv2.GaussianBlur(rng.standard_normal((H, W)).astype(np.float32), (0, 0), 10)
        noise = cv2.GaussianBlur(rng.standard_normal((H, W)).astype(np.float32), (0, 0), 1.5)
        img = 128.0 + 50.0 * field / field.std() + 6.0 * noise / noise.std()
        out.append(np.where(fov, np.clip(img, 0, 255), 0).astype(np.uint8))
    return out


class SlowRegistrar:
    """Takes ``delay_s`` per registration, never confident; keeps the frames it was given."""

    def __init__(self, delay_s: float):
        self.delay_s = delay_s
        self.frames: list[np.ndarray] = []

    def register(self, frame, init_pose, *, polarity="bone-dark", library=None, target_lps_mm=None):
        self.frames.append(np.array(frame))
        time.sleep(self.delay_s)
        return RegistrationResult(init_pose, False, 0.1, "gc", self.delay_s, "not confident: test stand-in")


def _case(plan, source, tmp_path: Path, delay_s: float) -> tuple[LiveCase, SlowRegistrar]:
    registrar = SlowRegistrar(delay_s)
    log = CaseLog.create(tmp_path / "cases", plan=plan, geometry=_geometry().to_dict())
    pipe = LivePipeline(plan, _geometry(), registrar=registrar, case_log=log, try_other_views=False)
    return LiveCase(source, pipe, source.name, None, log), registrar


def _logged_shots(case: LiveCase) -> int:
    with CaseLog.open(case.case_log.case_dir, readonly=True) as log:
        return len(log.shots())


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return float(np.mean(np.abs(a.astype(float) - b.astype(float)))) < 3.0


def test_folder_of_stills_is_a_sequence_of_shots(plan, tmp_path):
    folder = tmp_path / "stills"
    folder.mkdir()
    images = _shots(5)
    for k, image in enumerate(images):
        cv2.imwrite(str(folder / f"shot_{k + 1}.png"), image)
    (folder / "notes.txt").write_text("not an image")
    case, registrar = _case(plan, open_source(folder, fps=20.0), tmp_path, delay_s=0.1)
    lines = []
    try:
        summary = run_headless(case, log=lines.append)
    finally:
        case.close()
    assert (summary["frames"], summary["exposures"], len(summary["shots"]), summary["superseded"]) == (5, 5, 5, 0)
    assert lines == summary["shots"]
    assert all(_same(f, im) for f, im in zip(registrar.frames, images))
    assert _logged_shots(case) == 5


def test_folder_holding_each_shot_over_several_files_counts_each_once(plan, tmp_path):
    """Exported frames of a hold: each shot in four files that differ only by a grabber's
    noise. Each shot is counted once, the first of its files."""
    folder = tmp_path / "held"
    folder.mkdir()
    rng = np.random.default_rng(9)
    images = _shots(3, seed=9)
    for k, image in enumerate(images):
        for copy in range(4):
            noisy = np.clip(image + rng.normal(0.0, 1.2, image.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"frame_{4 * k + copy:03d}.png"), noisy)
    case, registrar = _case(plan, open_source(folder, realtime=False), tmp_path, delay_s=0.05)
    try:
        summary = run_headless(case, log=lambda line: None)
    finally:
        case.close()
    assert (summary["frames"], summary["exposures"], len(summary["shots"])) == (12, 3, 3)
    assert all(_same(f, im) for f, im in zip(registrar.frames, images))


def test_folder_of_video_frames_that_never_hold_warns(plan, tmp_path):
    """The same stills read as video frames (``stills=False``): no image holds for a second
    frame, so the detector finds nothing, and the run says so instead of "0 shots"."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, image in enumerate(_shots(4, seed=1)):
        cv2.imwrite(str(folder / f"frame_{k}.png"), image)
    case, _ = _case(plan, open_source(folder, realtime=False, stills=False), tmp_path, delay_s=0.0)
    lines = []
    try:
        summary = run_headless(case, log=lines.append)
    finally:
        case.close()
    assert (summary["frames"], summary["exposures"], summary["shots"]) == (4, 0, [])
    assert len(lines) == 1 and lines[0].startswith("warning: the shot detector found no shot in 4 frames of ")
    assert str(folder) in lines[0]


def _write_mp4(path: Path, images, hold_frames: int, fps: float = 25.0) -> int:
    for fourcc in ("avc1", "mp4v"):
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (W, H), False)
        if writer.isOpened():
            for image in images:
                for _ in range(hold_frames):
                    writer.write(image)
            writer.release()
            return len(images) * hold_frames
        writer.release()
    raise RuntimeError("this OpenCV build can write neither H.264 nor MPEG-4 video")


def test_mp4_replay_counts_every_shot_while_one_registers(plan, tmp_path):
    """Each shot is held 0.24 s at real-time pace and takes 0.5 s to register: the replay
    pauses while a shot registers, so every shot, the last included, is counted once."""
    images = _shots(4, seed=2)
    path = tmp_path / "shots.mp4"
    frames = _write_mp4(path, images, hold_frames=6)
    case, registrar = _case(plan, open_source(path), tmp_path, delay_s=0.5)
    try:
        summary = run_headless(case, log=lambda line: None)
    finally:
        case.close()
    assert summary["frames"] == frames
    assert (summary["exposures"], len(summary["shots"]), summary["superseded"]) == (4, 4, 0)
    assert len(registrar.frames) == 4
    assert all(_same(f, im) for f, im in zip(registrar.frames, images))
    assert _logged_shots(case) == 4


def test_mjpeg_stream_counts_every_shot(plan, tmp_path):
    """A live stream cannot pause: shots held 0.8 s, registered in 0.15 s, all counted."""
    images = _shots(4, seed=3)
    with MjpegServer(fps=25.0, mode="sequence", images=images, hold_frames=20, lifetime_s=20.0) as server:
        case, registrar = _case(plan, open_source(server.url), tmp_path, delay_s=0.15)
        try:
            summary = run_headless(case, max_shots=4, duration_s=12.0, source_timeout_s=10.0,
                                   log=lambda line: None)
        finally:
            case.close()
    assert (summary["exposures"], len(summary["shots"]), summary["superseded"]) == (4, 4, 0)
    assert summary["frames"] >= 4 * 2
    assert all(_same(f, im) for f, im in zip(registrar.frames, images))
    assert _logged_shots(case) == 4


def test_mjpeg_stream_faster_than_registration_keeps_the_newest_exposure(plan, tmp_path):
    """Shots held 0.3 s but registered in 1 s: the detector still sees every exposure while
    one registers; the newest waits (the ones it replaces are counted and said), and the
    last exposure is registered, not lost."""
    images = _shots(5, seed=4)
    lines = []
    with MjpegServer(fps=25.0, mode="sequence", images=images, hold_frames=8, lifetime_s=25.0) as server:
        case, registrar = _case(plan, open_source(server.url), tmp_path, delay_s=1.0)
        try:
            summary = run_headless(case, duration_s=5.0, source_timeout_s=10.0, log=lines.append)
        finally:
            case.close()
    shots, superseded = len(summary["shots"]), summary["superseded"]
    assert summary["exposures"] == 5
    assert shots + superseded == 5 and superseded >= 1
    assert sum("superseded by a newer one" in line for line in lines) == superseded
    assert _same(registrar.frames[0], images[0]) and _same(registrar.frames[-1], images[-1])
    assert _logged_shots(case) == shots


def test_an_error_while_a_stream_registers_ends_the_run_with_it(plan, tmp_path):
    """A failure in the registration thread is raised in the caller's, promptly."""

    class Broken(SlowRegistrar):
        def register(self, *args, **kwargs):
            raise InputError("cannot register (test)", "registrar")

    with MjpegServer(fps=25.0, mode="sequence", images=_shots(3, seed=8), hold_frames=10, lifetime_s=20.0) as server:
        case, _ = _case(plan, open_source(server.url), tmp_path, delay_s=0.0)
        case.pipeline.registrar = Broken(0.0)
        t0 = time.monotonic()
        try:
            with pytest.raises(InputError, match=r"registrar: cannot register \(test\)"):
                run_headless(case, duration_s=10.0, source_timeout_s=10.0, log=lambda line: None)
        finally:
            case.close()
    assert time.monotonic() - t0 < 8.0


def test_display_workers_see_every_exposure_while_one_registers(plan, request):
    """The OR display's workers (real QThreads) on the same too-fast stream: the video
    worker hands every exposure over while one registers, the newest waits, the replaced
    ones are signalled, and the last exposure is registered."""
    pytest.importorskip("pytestqt")
    qtbot = request.getfixturevalue("qtbot")
    from or_assist.app.workers import LatestJobWorker, Selection, VideoWorker
    from or_assist.video.capture import CaptureThread

    images = _shots(5, seed=6)
    registrar = SlowRegistrar(1.0)
    pipe = LivePipeline(plan, _geometry(), registrar=registrar, try_other_views=False)

    def job(j):
        event = j["event"]
        return pipe.process(event.image, j["implant"], j["view"], frame_index=event.index,
                            shown_since_s=j["shown_since_s"])

    done, superseded = [], []
    with MjpegServer(fps=25.0, mode="sequence", images=images, hold_frames=8, lifetime_s=25.0) as server:
        capture = CaptureThread(open_source(server.url)).start()
        registration = LatestJobWorker(job, "registration")
        registration.done.connect(lambda tag, result: done.append(tag))
        registration.superseded.connect(superseded.append)
        video = VideoWorker(capture, pipe, Selection(plan.implants[0].id, "lateral"), registration)
        registration.start()
        video.start()
        try:
            qtbot.waitUntil(lambda: video.exposures == 5 and len(done) + len(superseded) == 5, timeout=20000)
        finally:
            video.stop()
            registration.stop()
            capture.stop()
    assert video.exposures == 5 and len(superseded) == registration.jobs_dropped >= 1
    assert len(registrar.frames) == len(done) == registration.jobs_done
    assert _same(registrar.frames[0], images[0]) and _same(registrar.frames[-1], images[-1])


def test_time_printed_is_the_whole_registration(plan):
    """Three views tried, none confident: the line says the time of all three."""
    registrar = SlowRegistrar(0.2)
    pipe = LivePipeline(plan, _geometry(), registrar=registrar, try_other_views=True)
    result = pipe.process(_shots(1, seed=5)[0], plan.implants[0].id, "lateral")
    assert [a["view"] for a in result.attempts] == ["lateral", "inlet", "outlet"]
    assert all(a["seconds"] >= 0.2 for a in result.attempts)
    assert result.register_seconds >= 0.6
    assert result.registration.seconds == pytest.approx(0.2)
    line = result.summary()
    assert f"; {result.register_seconds:.1f} s, 3 attempts)" in line, line


def test_headless_bad_source_option_is_named(tmp_path):
    with pytest.raises(InputError, match="stills"):
        open_source(tmp_path, stills="yes")
