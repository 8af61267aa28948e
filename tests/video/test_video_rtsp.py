"""RTSP through OpenCV's FFmpeg backend, against a real RTSP server (gst-rtsp-server).

The server (tests/video/rtsp_server.py) runs under the system Python, which has the GObject
bindings from the Debian packages python3-gst-1.0, gir1.2-gst-rtsp-server-1.0,
gstreamer1.0-plugins-base and gstreamer1.0-plugins-good; without them these tests are
skipped with that reason.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from or_assist.video.capture import CaptureThread
from or_assist.video.sources.base import SignalState
from or_assist.video.sources.opencv import UrlSource
from tests.video.mjpeg_server import closed_port
from tests.video.test_video_capture import FAST, StateLog

SERVER = Path(__file__).resolve().parent / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
PROBE = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
         "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
         "assert Gst.ElementFactory.find('rtpjpegpay') and Gst.ElementFactory.find('jpegenc') "
         "and Gst.ElementFactory.find('videotestsrc')")


def _server_available() -> str | None:
    if not shutil.which(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} not found"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", PROBE], capture_output=True, timeout=30)
    if probe.returncode != 0:
        return ("no GStreamer RTSP server for the system Python (apt-get install python3-gst-1.0 "
                "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good)")
    return None


class RtspServer:
    """tests/video/rtsp_server.py in a subprocess; stop() kills it, start() brings it back on
    the same port."""

    def __init__(self, lifetime_s: float = 20.0):
        self.port = closed_port()
        self.lifetime_s = lifetime_s
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/carm"

    def start(self) -> None:
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), "--port", str(self.port),
                                      "--lifetime", str(self.lifetime_s)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        if line != f"READY {self.port}":
            self.stop()
            raise RuntimeError(f"RTSP server did not start: {line!r}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc.stdout.close()
            self.proc = None


@pytest.fixture(scope="module")
def rtsp_available():
    reason = _server_available()
    if reason:
        pytest.skip(reason)


@pytest.fixture()
def rtsp_server(rtsp_available):
    server = RtspServer()
    server.start()
    yield server
    server.stop()


def test_rtsp_stream_reads_frames(rtsp_server):
    with UrlSource(rtsp_server.url, open_timeout_s=3.0, read_timeout_s=1.0) as source:
        info = source.info
        frames = [source.read() for _ in range(30)]
    assert info.kind == "url" and (info.width, info.height) == (160, 120) and info.fps == pytest.approx(25)
    assert all(f is not None and f.image.shape == (120, 160) for f in frames)
    assert 100 < frames[-1].image.mean() < 160          # the grey test picture, not black
    # RTP carries time stamps: the positions advance at the stream's 25 fps
    times = [f.source_time_s for f in frames[-10:]]
    assert times[-1] - times[0] == pytest.approx(9 / 25, abs=0.02)


def test_rtsp_reconnects_after_the_server_restarts(rtsp_server):
    log = StateLog()
    source = UrlSource(rtsp_server.url, open_timeout_s=2.0, read_timeout_s=0.5)
    with CaptureThread(source, on_state=log, **FAST) as cap:
        assert log.wait_state(SignalState.LIVE, timeout_s=4.0), log.events
        mark = len(log.events)
        rtsp_server.stop()
        assert log.wait_state(SignalState.NO_SIGNAL, after=mark, timeout_s=3.0), log.events
        assert log.wait_state(SignalState.RECONNECTING, after=mark, timeout_s=3.0), log.events
        rtsp_server.start()
        assert log.wait_state(SignalState.LIVE, after=mark, timeout_s=5.0), log.events
        assert cap.latest(timeout_s=1.0) is not None
        assert cap.stats["reconnects"] == 1
