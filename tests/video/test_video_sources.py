"""Video sources on real components: an HTTP MJPEG server, MP4 files written through
OpenCV's FFmpeg, image folders, and every kind of bad input."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from or_assist.errors import InputError
from or_assist.video.sources import spec as spec_module
from or_assist.video.sources.spec import open_source, register_source_kind
from or_assist.video.sources.base import SourceInfo
from or_assist.cli.video import format_devices, format_probe
from or_assist.video.sources.devices import list_devices, probe_source
from or_assist.video.sources.folder import ImageFolderSource
from or_assist.video.sources.opencv import DeviceSource, FileSource, UrlSource
from or_assist.video.sources.opencv import device_paths, mask_url
from or_assist.video.sources.v4l2 import (VIDIOC_ENUM_FMT, VIDIOC_ENUM_FRAMEINTERVALS,
                                  VIDIOC_ENUM_FRAMESIZES, VIDIOC_QUERYCAP, query_device)
from tests.video.mjpeg_server import MjpegServer, SilentServer, closed_port, counter_image, read_counter

VIDEO_FPS = 25.0
VIDEO_FRAMES = 10
VIDEO_SIZE = (160, 128)


def _write_video(path: Path) -> str:
    """Write VIDEO_FRAMES counter frames; H.264 ('avc1') when this OpenCV build can
    encode it, else MPEG-4 Part 2 ('mp4v'). Returns the FOURCC used."""
    for fourcc in ("avc1", "mp4v"):
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), VIDEO_FPS, VIDEO_SIZE, False)
        if writer.isOpened():
            for k in range(VIDEO_FRAMES):
                writer.write(counter_image(k, VIDEO_SIZE, level=40 + 15 * k))
            writer.release()
            return fourcc
        writer.release()
    raise RuntimeError("this OpenCV build can write neither H.264 nor MPEG-4 video")


@pytest.fixture(scope="module")
def video_file(tmp_path_factory) -> tuple[Path, str]:
    """A real MP4 written through OpenCV's FFmpeg: (path, fourcc). The pip OpenCV build
    ships no H.264 encoder (only the hardware h264_v4l2m2m, absent here), so this is
    usually 'mp4v'."""
    path = tmp_path_factory.mktemp("video") / "counter.mp4"
    return path, _write_video(path)


@pytest.fixture()
def mjpeg_server():
    with MjpegServer(fps=50.0, size=(160, 120), lifetime_s=15.0) as server:
        yield server


# ---------------------------------------------------------------- URL (HTTP MJPEG)


def test_url_source_reads_a_real_mjpeg_stream(mjpeg_server):
    with UrlSource(mjpeg_server.url, open_timeout_s=2.0, read_timeout_s=1.0) as source:
        info = source.info
        frames = [source.read() for _ in range(10)]
    assert info.kind == "url" and info.backend == "FFMPEG" and info.fourcc == "MJPG"
    assert (info.width, info.height) == (160, 120)
    assert all(f is not None for f in frames)
    assert all(f.image.shape == (120, 160) and f.image.dtype == np.uint8 for f in frames)
    assert [f.index for f in frames] == list(range(10))
    counters = [read_counter(f.image) for f in frames]
    assert counters == sorted(counters) and len(set(counters)) == 10
    stamps = np.array([f.timestamp_s for f in frames])
    assert np.all(np.diff(stamps) > 0)
    # paced by the server at 50 fps: 9 intervals of ~20 ms
    assert 0.1 < stamps[-1] - stamps[0] < 0.6


def test_url_source_color_option(mjpeg_server):
    with UrlSource(mjpeg_server.url, open_timeout_s=2.0, color=True) as source:
        frame = source.read()
    assert frame.image.shape == (120, 160, 3)
    # the server's gray counter pictures arrive as three equal channels (up to JPEG error)
    # and decode to a counter the server has already sent
    spread = frame.image.max(axis=2).astype(int) - frame.image.min(axis=2)
    assert spread.max() <= 16
    assert 0 <= read_counter(frame.image) < mjpeg_server.counter


def test_url_that_refuses_is_a_clear_error():
    url = f"http://127.0.0.1:{closed_port()}/stream.mjpg"
    with pytest.raises(InputError, match=r"127\.0\.0\.1.*could not open the stream"):
        UrlSource(url, open_timeout_s=1.0).open()


def test_url_that_does_not_answer_times_out():
    with SilentServer() as silent:
        t0 = time.monotonic()
        with pytest.raises(InputError, match=f"{silent.port}.*no answer within 0.5 s"):
            UrlSource(silent.url, open_timeout_s=0.5).open()
        assert time.monotonic() - t0 < 3.0


def test_url_password_is_masked():
    assert mask_url("rtsp://admin:secret@10.0.0.5:554/stream1") == "rtsp://admin:***@10.0.0.5:554/stream1"
    source = UrlSource(f"rtsp://admin:secret@127.0.0.1:{closed_port()}/s", open_timeout_s=0.5)
    assert "secret" not in source.name
    with pytest.raises(InputError) as err:
        source.open()
    assert "secret" not in str(err.value)


# ---------------------------------------------------------------- files


def test_mp4_replay_at_real_time_pace(video_file):
    path, fourcc = video_file
    with FileSource(path, realtime=True) as source:
        info = source.info
        frames = [source.read() for _ in range(VIDEO_FRAMES)]
    assert info.kind == "file" and info.frame_count == VIDEO_FRAMES and info.fps == pytest.approx(VIDEO_FPS)
    assert (info.width, info.height) == VIDEO_SIZE
    assert [read_counter(f.image) for f in frames] == list(range(VIDEO_FRAMES)), fourcc
    intervals = np.diff([f.timestamp_s for f in frames])
    assert intervals.mean() == pytest.approx(1 / VIDEO_FPS, rel=0.2)
    assert [f.source_time_s for f in frames] == pytest.approx([k / VIDEO_FPS for k in range(VIDEO_FRAMES)])


def test_mp4_replay_as_fast_as_possible_and_looping(video_file, monkeypatch):
    path, _ = video_file
    paced = []
    monkeypatch.setattr("or_assist.video.sources.pacer.Pacer.wait", lambda self: paced.append(self))
    with FileSource(path, realtime=False, loop=True) as source:
        frames = [source.read() for _ in range(3 * VIDEO_FRAMES)]
    assert paced == []                                    # never waits for real time
    assert [f.index for f in frames] == list(range(3 * VIDEO_FRAMES))
    assert [read_counter(f.image) for f in frames] == list(range(VIDEO_FRAMES)) * 3
    assert frames[VIDEO_FRAMES].source_time_s == pytest.approx(0.0)
    assert not source.ended


def test_mp4_ends_without_loop(video_file):
    path, _ = video_file
    with FileSource(path, realtime=False) as source:
        frames = [source.read() for _ in range(VIDEO_FRAMES)]
        assert not source.ended
        assert source.read() is None
        assert source.ended
    assert all(f is not None for f in frames)


def test_file_that_is_not_video(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 20)
    with pytest.raises(InputError, match=r"notes\.mp4.*not a video file"):
        open_source(bad).open()


def test_missing_file_or_folder():
    with pytest.raises(InputError, match=r"nowhere\.mp4.*no such file or folder"):
        open_source("/nonexistent/nowhere.mp4")
    with pytest.raises(InputError, match=r"gone\.mp4.*no such video file"):
        FileSource("/nonexistent/gone.mp4").open()


# ---------------------------------------------------------------- image folders


def _write_folder(folder: Path, count: int) -> None:
    folder.mkdir()
    for k in range(count):  # frame_1 ... frame_<count>: natural order, not 1, 10, 2
        cv2.imwrite(str(folder / f"frame_{k + 1}.png"), counter_image(k, (128, 96)))
    (folder / "readme.txt").write_text("not an image")


def test_image_folder_replay_real_time(tmp_path):
    folder = tmp_path / "shots"
    _write_folder(folder, 12)
    with ImageFolderSource(folder, fps=20.0, realtime=True) as source:
        info = source.info
        frames = [source.read() for _ in range(12)]
        assert source.read() is None and source.ended
    assert info.kind == "folder" and info.frame_count == 12 and (info.width, info.height) == (128, 96)
    assert [read_counter(f.image) for f in frames] == list(range(12))
    assert np.diff([f.timestamp_s for f in frames]).mean() == pytest.approx(0.05, rel=0.2)
    assert frames[3].source_time_s == pytest.approx(3 / 20.0)


def test_image_folder_fast_loop_pattern_and_bad_file(tmp_path, monkeypatch):
    folder = tmp_path / "shots"
    _write_folder(folder, 4)
    (folder / "frame_3.png").write_bytes(b"\x89PNG broken")
    source = open_source(folder, fps=5.0, realtime=False, loop=True, pattern="frame_*.png")
    assert isinstance(source, ImageFolderSource)
    paced = []
    monkeypatch.setattr("or_assist.video.sources.pacer.Pacer.wait", lambda self: paced.append(self))
    with source:
        counters = [read_counter(source.read().image) for _ in range(7)]
    assert paced == []                                    # never waits for real time
    assert counters == [0, 1, 3, 0, 1, 3, 0]
    assert [p.name for p in source.skipped_files] == ["frame_3.png"]


def test_image_folder_errors(tmp_path):
    with pytest.raises(InputError, match=r"missing.*no such folder"):
        ImageFolderSource(tmp_path / "missing").open()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"empty.*no images"):
        open_source(empty).open()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"broken.*none of the 1 files decodes"):
        ImageFolderSource(broken).open()
    with pytest.raises(InputError, match="fps"):
        ImageFolderSource(empty, fps=0)


def test_recordings_are_checked_once_before_a_case(tmp_path, caplog):
    from or_assist.video.sources.spec import check_recording_opens

    folder = tmp_path / "shots"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png", "d.png"):
        (folder / name).write_bytes(b"not a png")
    caplog.set_level("WARNING")
    with pytest.raises(InputError, match=r"shots: none of the 4 files decodes as an image \(a.png, b.png, c.png, \.\.\.\)"):
        check_recording_opens(open_source(folder), 30.0)
    assert caplog.records == []          # one error, not a warning per file as well
    cv2.imwrite(str(folder / "e.png"), counter_image(7, (64, 48)))
    source = open_source(folder)
    info = check_recording_opens(source, 30.0)
    assert info.kind == "folder" and (info.width, info.height) == (64, 48) and not source.is_open
    assert len(caplog.records) == 4      # a usable folder still names the files it skips
    assert read_counter(source.open() and source.read().image) == 7
    source.close()
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    with pytest.raises(InputError, match="zero.mp4: not a video file"):
        check_recording_opens(open_source(zero), 30.0)
    assert check_recording_opens(UrlSource(f"rtsp://127.0.0.1:{closed_port()}/x"), 30.0) is None  # live: not checked


# ---------------------------------------------------------------- devices


def test_missing_device_index_is_a_clear_error():
    listing = ", ".join(device_paths()) if device_paths() else "none"
    with pytest.raises(InputError, match=rf"no capture device 7: .*found devices: {listing}"):
        open_source("7").open()
    with pytest.raises(InputError, match=r"no capture device /dev/video97: no such device node"):
        DeviceSource("/dev/video97").open()


def test_device_arguments_are_checked():
    with pytest.raises(InputError, match=r"backend.*unknown capture backend 'quicktime'"):
        DeviceSource(0, backend="quicktime")
    with pytest.raises(InputError, match=r"fourcc.*four ASCII characters"):
        DeviceSource(0, fourcc="MJPEG")
    with pytest.raises(InputError, match=r"width.*positive"):
        DeviceSource(0, width=-640)
    with pytest.raises(InputError, match=r"device.*index >= 0"):
        DeviceSource(-1)


def test_device_source_reports_requested_against_delivered(video_file):
    # No grabber on a test machine: open the recording through the device path with the
    # FFmpeg backend, which ignores requested modes the way many grabbers do.
    source = DeviceSource(str(video_file[0]), backend="ffmpeg", width=320, height=240, fourcc="YUYV")
    with source:
        info = source.info
        frame = source.read()
    assert info.kind == "device" and info.backend == "FFMPEG"
    assert info.requested == {"backend": "ffmpeg", "fourcc": "YUYV", "width": 320, "height": 240}
    assert (info.width, info.height) == VIDEO_SIZE
    assert info.mismatches()[:2] == ["width: requested 320, delivered 160", "height: requested 240, delivered 128"]
    assert frame.image.shape == VIDEO_SIZE[::-1] and frame.index == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="V4L2 is Linux only")
def test_v4l2_request_numbers_match_videodev2():
    # The values of linux/videodev2.h on x86-64 and arm64: the struct layouts are right.
    assert (VIDIOC_QUERYCAP, VIDIOC_ENUM_FMT, VIDIOC_ENUM_FRAMESIZES, VIDIOC_ENUM_FRAMEINTERVALS) == (
        0x80685600, 0xC0405602, 0xC02C564A, 0xC034564B)
    assert query_device("/dev/video97") is None
    assert query_device("/dev/null") is None  # opens, but is not a V4L2 device


def test_list_devices_on_a_machine_without_grabbers():
    if device_paths():
        pytest.skip("this machine has capture devices")
    assert list_devices() == []
    assert "no capture devices found" in format_devices(list_devices())


def test_probe_reports_what_the_source_delivers(mjpeg_server):
    report = probe_source(mjpeg_server.url, seconds=0.6)
    assert report.stats["frames_captured"] > 0 and not report.no_frames
    text = format_probe(report)
    assert "url http://127.0.0.1" in text and "160x120" in text and "MJPG" in text
    fps = float(text.split("fps measured")[0].rsplit("(", 1)[1])
    assert 30 < fps < 70  # the server sends 50 fps


def test_source_info_reports_mismatches():
    info = SourceInfo(kind="device", name="/dev/video0", width=1280, height=720, fps=30.0, fourcc="YUYV",
                      backend="V4L2", requested={"width": 1920, "height": 1080, "fps": 60, "fourcc": "MJPG"})
    assert info.mismatches() == ["width: requested 1920, delivered 1280", "height: requested 1080, delivered 720",
                                 "fps: requested 60, delivered 30", "fourcc: requested MJPG, delivered YUYV"]
    assert "NOT AS REQUESTED" in info.summary()


# ---------------------------------------------------------------- open_source


def test_open_source_dispatch(tmp_path, video_file):
    assert isinstance(open_source(0), DeviceSource)
    assert isinstance(open_source("/dev/video0", width=1920, height=1080, fourcc="MJPG"), DeviceSource)
    assert isinstance(open_source("rtsp://127.0.0.1:8554/carm", open_timeout_s=1), UrlSource)
    assert isinstance(open_source(video_file[0], loop=True, width=None), FileSource)
    with pytest.raises(InputError, match=r"option 'width'.*video file source"):
        open_source(video_file[0], width=640)
    with pytest.raises(InputError, match="source.*got ''"):
        open_source("  ")


def test_simulator_spec_without_the_scenario_module(monkeypatch):
    monkeypatch.setattr(spec_module, "_KINDS", {})  # as if the simulator had not registered its kind
    with pytest.raises(InputError, match=r"sim:demo.*or_assist\.sim\.scenario\.spec"):
        open_source("sim:demo")


def test_simulator_spec_reaches_the_scenario_module():
    import or_assist.sim.scenario.spec  # noqa: F401  (registers the sim: kind)

    with pytest.raises(InputError, match=r"sim:demo.*unknown option.*bogus"):
        open_source("sim:demo", bogus=1, width=None)


def test_registered_source_kinds(monkeypatch, video_file):
    monkeypatch.setattr(spec_module, "_KINDS", {})
    made = []

    def factory(spec, **options):
        made.append((spec, options))
        return FileSource(video_file[0], **options)

    register_source_kind("test:", factory)
    assert isinstance(open_source("test:one", loop=True, fps=None), FileSource)
    assert made == [("test:one", {"loop": True})]
    register_source_kind("test:", lambda spec, **options: object())
    with pytest.raises(InputError, match=r"test:two.*not a FrameSource"):
        open_source("test:two")
    with pytest.raises(InputError, match="prefix"):
        register_source_kind("", factory)
    with pytest.raises(InputError, match="factory"):
        register_source_kind("x:", "not callable")


def test_read_before_open_is_an_error(video_file):
    with pytest.raises(InputError, match="not open"):
        FileSource(video_file[0]).read()


def test_image_folder_frames_carry_their_exposure(tmp_path):
    """A folder of stills: each file is its own exposure (its position in the folder, a
    file that does not decode keeps its number unused); as video frames, none is known."""
    folder = tmp_path / "shots"
    _write_folder(folder, 4)
    (folder / "frame_2.png").write_bytes(b"\x89PNG broken")
    with ImageFolderSource(folder, fps=10.0, realtime=False, loop=True) as source:
        assert source.recorded and not source.on_demand
        frames = [source.read() for _ in range(5)]
    assert [f.exposure for f in frames] == [0, 2, 3, 0, 2]
    assert [read_counter(f.image) for f in frames] == [0, 2, 3, 0, 2]
    assert [f.source_time_s for f in frames[:3]] == pytest.approx([0.0, 0.2, 0.3])
    with ImageFolderSource(folder, realtime=False, stills=False) as source:
        assert {source.read().exposure for _ in range(3)} == {None}
    with pytest.raises(InputError, match="stills"):
        ImageFolderSource(folder, stills=1)


def test_recordings_wait_for_their_reader(video_file, mjpeg_server):
    assert FileSource(video_file[0]).recorded
    assert not UrlSource(mjpeg_server.url).recorded
