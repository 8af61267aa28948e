"""CaptureThread on real streams: newest-frame semantics, reconnection after the server
is stopped and restarted, size changes, black and frozen frames, bad sources."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from or_assist.errors import InputError
from or_assist.video.capture import CaptureThread
from or_assist.video.sources.base import SignalState
from or_assist.video.sources.folder import ImageFolderSource
from or_assist.video.sources.opencv import FileSource, UrlSource
from tests.video.mjpeg_server import MjpegServer, closed_port, counter_image, read_counter

FAST = dict(no_signal_after_s=0.5, reconnect_backoff_s=(0.1, 0.2))


class StateLog:
    """Collects ``on_state`` reports and lets a test wait for one."""

    def __init__(self):
        self.events: list[tuple[SignalState, str]] = []
        self._cond = threading.Condition()

    def __call__(self, state: SignalState, message: str) -> None:
        with self._cond:
            self.events.append((state, message))
            self._cond.notify_all()

    @property
    def states(self) -> list[SignalState]:
        with self._cond:
            return [s for s, _ in self.events]

    def wait_for(self, predicate, timeout_s: float = 4.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not any(predicate(s, m) for s, m in self.events):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def wait_state(self, state: SignalState, after: int = 0, timeout_s: float = 4.0) -> bool:
        """Wait for ``state`` among the events from position ``after`` on."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while state not in [s for s, _ in self.events[after:]]:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True


def _url(server: MjpegServer, **kw) -> UrlSource:
    return UrlSource(server.url, open_timeout_s=1.0, read_timeout_s=0.5, **kw)


def test_slow_consumer_always_gets_the_newest_frame(mjpeg_server):
    log = StateLog()
    with CaptureThread(_url(mjpeg_server), on_state=log, **FAST) as cap:
        assert log.wait_state(SignalState.LIVE)
        taken = []
        for _ in range(8):
            time.sleep(0.1)  # a consumer 5x slower than the 50 fps stream
            frame = cap.latest(timeout_s=1.0)
            assert frame is not None
            behind = mjpeg_server.counter - read_counter(frame.image)
            taken.append((frame.index, behind))
        stats = cap.stats
    indices = [t[0] for t in taken]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert max(np.diff(indices)) >= 2                   # frames in between were skipped ...
    assert stats["frames_dropped"] > 0                  # ... and counted
    assert stats["frames_taken"] == 8
    assert stats["frames_captured"] >= stats["frames_dropped"] + stats["frames_taken"]
    # never a backlog: a queue would fall ~4 frames further behind at every take
    assert max(t[1] for t in taken) <= 8, taken
    assert 0 < stats["fps_measured"] < 70               # never above the 50 fps the server sends


def test_latest_returns_each_frame_once(mjpeg_server):
    with CaptureThread(_url(mjpeg_server), **FAST) as cap:
        first = cap.latest(timeout_s=2.0)
        assert first is not None
        assert cap.latest() is None or cap.latest() is None  # no wait: at most one new frame
        second = cap.latest(timeout_s=1.0)
        assert second.index > first.index
        assert cap.peek().index >= second.index


def test_reconnects_after_the_server_restarts(mjpeg_server):
    log = StateLog()
    with CaptureThread(_url(mjpeg_server), on_state=log, **FAST) as cap:
        assert log.wait_state(SignalState.LIVE)
        before = cap.latest(timeout_s=1.0)
        mark = len(log.events)
        mjpeg_server.stop()
        assert log.wait_state(SignalState.NO_SIGNAL, after=mark, timeout_s=3.0), log.events
        assert log.wait_state(SignalState.RECONNECTING, after=mark, timeout_s=3.0), log.events
        time.sleep(0.3)                           # the encoder stays down a while
        assert cap.running and cap.stats["reconnects"] == 0
        mjpeg_server.start()                      # back on the same port
        assert log.wait_state(SignalState.LIVE, after=mark, timeout_s=4.0), log.events
        after = cap.latest(timeout_s=1.0)
        stats = cap.stats
    states = log.states
    live_again = states.index(SignalState.LIVE, mark)
    assert states.index(SignalState.NO_SIGNAL, mark) < states.index(SignalState.RECONNECTING, mark) < live_again
    assert stats["reconnects"] == 1 and stats["reconnect_attempts"] >= 1
    assert after.index > before.index
    assert read_counter(after.image) > read_counter(before.image)


def test_unreachable_url_keeps_trying_without_crashing():
    log = StateLog()
    url = f"http://127.0.0.1:{closed_port()}/stream.mjpg"
    cap = CaptureThread(UrlSource(url, open_timeout_s=0.5), on_state=log, **FAST).start()
    try:
        assert log.wait_state(SignalState.NO_SIGNAL, timeout_s=2.0)
        assert log.wait_state(SignalState.RECONNECTING, timeout_s=2.0)
        time.sleep(0.4)
        assert cap.running and cap.latest() is None
        assert cap.stats["reconnect_attempts"] >= 2
        assert "cannot open" in log.events[0][1] and "127.0.0.1" in log.events[0][1]
    finally:
        assert cap.stop()                                 # the thread ended within stop()'s 1 s


def test_frame_size_change_mid_stream_is_reported(mjpeg_server):
    log = StateLog()
    with CaptureThread(_url(mjpeg_server), on_state=log, **FAST) as cap:
        assert log.wait_state(SignalState.LIVE)
        mjpeg_server.size = (320, 240)
        assert log.wait_for(lambda s, m: m == "frame size changed from 160x120 to 320x240"), log.events
        frame = cap.latest(timeout_s=1.0)
        assert cap.state is SignalState.LIVE
        stats = cap.stats
    assert frame.image.shape == (240, 320)
    assert read_counter(frame.image) > 0
    assert stats["size_changes"] == 1 and (stats["width"], stats["height"]) == (320, 240)


def test_black_frames_then_picture(mjpeg_server):
    mjpeg_server.mode = "black"
    log = StateLog()
    with CaptureThread(_url(mjpeg_server), on_state=log, **FAST) as cap:
        assert log.wait_state(SignalState.BLACK), log.events
        assert SignalState.LIVE not in log.states
        mark = len(log.events)
        mjpeg_server.mode = "counter"
        assert log.wait_state(SignalState.LIVE, after=mark), log.events
        assert cap.latest(timeout_s=1.0).image.mean() > 50


def test_frozen_stream_is_a_separate_configurable_state():
    with MjpegServer(fps=50.0, mode="still", lifetime_s=10.0) as still:
        log, log_off = StateLog(), StateLog()
        with CaptureThread(_url(still), on_state=log, frozen_after_s=0.3, **FAST) as cap, \
                CaptureThread(_url(still), on_state=log_off, frozen_after_s=None, **FAST) as cap_off:
            assert log.wait_state(SignalState.FROZEN, timeout_s=3.0), log.events
            time.sleep(0.2)
            assert cap.latest() is not None          # frames still flow while FROZEN
            assert cap.stats["reconnects"] == 0      # and FROZEN does not reconnect
            assert cap_off.state is SignalState.LIVE and SignalState.FROZEN not in log_off.states
        assert log.states[:2] == [SignalState.LIVE, SignalState.FROZEN]


def test_file_replay_ends(tmp_path):
    path = tmp_path / "five.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (96, 64), False)
    for k in range(5):
        writer.write(counter_image(k, (96, 64)))
    writer.release()
    log = StateLog()
    with CaptureThread(FileSource(path, realtime=False), on_state=log, **FAST) as cap:
        assert log.wait_state(SignalState.ENDED, timeout_s=3.0)
        last = cap.latest()
        stats = cap.stats
    assert log.states == [SignalState.LIVE, SignalState.ENDED]
    assert stats["frames_captured"] == 5 and read_counter(last.image) == 4
    assert not cap.running


def test_looping_folder_replay_runs_until_stopped(tmp_path):
    for k in range(3):
        cv2.imwrite(str(tmp_path / f"{k}.png"), counter_image(k, (64, 48)))
    log = StateLog()
    with CaptureThread(ImageFolderSource(tmp_path, fps=50.0, loop=True), on_state=log, **FAST) as cap:
        seen = set()
        deadline = time.monotonic() + 2.0
        while len(seen) < 3 and time.monotonic() < deadline:
            frame = cap.latest(timeout_s=0.5)
            if frame is not None:
                seen.add(read_counter(frame.image))
        time.sleep(0.1)
        assert cap.running and cap.state is SignalState.LIVE
    assert seen == {0, 1, 2}
    assert cap.stats["frames_captured"] > 3


def test_capture_arguments_are_checked(tmp_path):
    with pytest.raises(InputError, match="source.*FrameSource"):
        CaptureThread("/dev/video0")
    source = ImageFolderSource(tmp_path)
    with pytest.raises(InputError, match="frozen_after_s"):
        CaptureThread(source, frozen_after_s=0)
    with pytest.raises(InputError, match="reconnect_backoff_s"):
        CaptureThread(source, reconnect_backoff_s=())
    with pytest.raises(InputError, match="black_level"):
        CaptureThread(source, black_level=300)


def test_silent_source_is_reported_periodically_until_frames_come(mjpeg_server):
    log = StateLog()
    url = f"http://user:pass@127.0.0.1:{closed_port()}/stream.mjpg"
    cap = CaptureThread(UrlSource(url, open_timeout_s=0.5), on_state=log, no_signal_report_s=0.3, **FAST).start()
    try:
        assert log.wait_for(lambda s, m: sum(m.startswith("no signal from") for _, m in log.events) >= 2,
                            timeout_s=10.0)
    finally:
        assert cap.stop()
    reports = [(s, m) for s, m in log.events if m.startswith("no signal from")]
    assert all(s is SignalState.NO_SIGNAL and m.endswith("s, retrying") for s, m in reports)
    assert all("user:***@127.0.0.1" in m and "pass" not in m for _, m in log.events)
    assert cap.stats["no_signal_reports"] == len(reports) and "could not open" in cap.stats["problem"]

    live = StateLog()
    with CaptureThread(_url(mjpeg_server), on_state=live, no_signal_report_s=0.3, **FAST) as cap:
        assert live.wait_state(SignalState.LIVE)
        time.sleep(1.0)
        assert cap.stats["no_signal_reports"] == 0 and cap.stats["problem"] == ""
    assert not any(m.startswith("no signal from") for _, m in live.events)
    with pytest.raises(InputError, match="no_signal_report_s"):
        CaptureThread(_url(mjpeg_server), no_signal_report_s=0)
