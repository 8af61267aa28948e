"""Fixtures of the video tests: a real local MJPEG server (:mod:`tests.video.mjpeg_server`)."""

from __future__ import annotations

import pytest

from tests.video.mjpeg_server import MjpegServer


@pytest.fixture()
def mjpeg_server():
    """A live HTTP MJPEG stream, 160 x 120 at 50 fps, for at most 15 s; each frame carries
    its counter (:func:`tests.video.mjpeg_server.read_counter`)."""
    with MjpegServer(fps=50.0, size=(160, 120), lifetime_s=15.0) as server:
        yield server
