"""A real HTTP MJPEG server for the video-source tests (multipart/x-mixed-replace).

Serves JPEG frames made with ``cv2.imencode`` on 127.0.0.1 from a background thread,
as an IP camera or a network video encoder does. Every frame carries the server's
frame counter as a row of 16 black/white cells (:func:`read_counter` decodes it), so a
test can tell exactly which frame it got and how old it is. The server can be stopped
and started again on the same port (to test reconnection), switch its frame size, and
send black or bit-identical frames. It is bounded: it stops by itself after
``lifetime_s``.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time

import cv2
import numpy as np

__all__ = ["MjpegServer", "counter_image", "read_counter", "closed_port", "SilentServer"]

BITS = 16
BOUNDARY = b"frame"


def counter_image(counter: int, size: tuple[int, int], level: int = 128) -> np.ndarray:
    """(H, W) uint8 frame: grey ``level`` with the counter's 16 bits as cells along the top."""
    width, height = size
    image = np.full((height, width), level, np.uint8)
    cell = width // BITS
    for bit in range(BITS):
        value = 255 if (counter >> bit) & 1 else 0
        image[: height // 4, bit * cell:(bit + 1) * cell] = value
    # A gradient below the cells, so frames are not trivially compressible.
    image[height // 2:, :] = (np.arange(width) * 255 // max(1, width - 1)).astype(np.uint8)[None, :]
    return image


def read_counter(image: np.ndarray) -> int:
    """The counter :func:`counter_image` drew (robust to JPEG / MPEG-4 compression)."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    height, width = gray.shape
    cell = width // BITS
    row = height // 8
    value = 0
    for bit in range(BITS):
        centre = gray[row, bit * cell + cell // 2]
        if centre > 128:
            value |= 1 << bit
    return value


def closed_port() -> int:
    """A local TCP port nobody listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers (a hung stream server)."""

    def __init__(self):
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "SilentServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "_HttpServer"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        period = 1.0 / owner.fps
        due = time.monotonic()
        try:
            while not self.server.stopping.is_set() and time.monotonic() < owner.deadline:
                jpeg = owner.next_jpeg()
                self.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
                                 + f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                self.wfile.flush()
                due += period
                self.server.stopping.wait(max(0.0, due - time.monotonic()))
        except OSError:  # the client went away, or stop() closed the connection
            pass


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, owner: "MjpegServer"):
        self.owner = owner
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):
        with self.lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.lock:
            self.connections.discard(request)
        super().shutdown_request(request)


class MjpegServer:
    """An HTTP MJPEG stream on 127.0.0.1.

    Parameters
    ----------
    fps : float
        Frames per second sent to each client.
    size : (width, height)
        Frame size; may be changed while serving.
    mode : str
        ``"counter"`` (default: the counter frames), ``"black"`` (all zero),
        ``"still"`` (the same JPEG bytes every time: a frozen output) or
        ``"sequence"`` (``images`` in turn, each for ``hold_frames`` frames, as a C-arm's
        last-image-hold output shows its shots; black frames after the last).
    lifetime_s : float
        The server stops by itself this long after the first start.
    images : sequence of (H, W) uint8 ndarray, optional
        The shots of ``"sequence"`` (their size is the frame size).
    hold_frames : int
        Frames each image of ``"sequence"`` is sent for.
    """

    def __init__(self, fps: float = 50.0, size=(160, 120), mode: str = "counter", lifetime_s: float = 20.0,
                 images=(), hold_frames: int = 10):
        self.fps = float(fps)
        self.size = tuple(size)
        self.mode = mode
        self.counter = 0
        self.port = 0
        self.deadline = time.monotonic() + lifetime_s
        self._lock = threading.Lock()
        self._still: bytes | None = None
        self._sequence = [bytes(cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]) for im in images]
        self.hold_frames = int(hold_frames)
        if images:
            self.size = (images[0].shape[1], images[0].shape[0])
        self.sent_at: list[float] = []   # time.monotonic() when each image of "sequence" was first sent
        self._http: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer_started = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def next_jpeg(self) -> bytes:
        """The next frame to send, JPEG-encoded."""
        with self._lock:
            if self.mode == "still":
                if self._still is None:
                    self._still = bytes(cv2.imencode(".jpg", counter_image(12345, self.size))[1])
                return self._still
            if self.mode == "sequence":
                k = self.counter // self.hold_frames
                if self.counter % self.hold_frames == 0 and k < len(self._sequence):
                    self.sent_at.append(time.monotonic())
                self.counter += 1
                if k < len(self._sequence):
                    return self._sequence[k]
                if self._still is None:
                    self._still = bytes(cv2.imencode(".jpg", np.zeros(self.size[::-1], np.uint8))[1])
                return self._still
            if self.mode == "black":
                image = np.zeros(self.size[::-1], np.uint8)
            else:
                image = counter_image(self.counter, self.size)
            self.counter += 1
        return bytes(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1])

    def start(self) -> "MjpegServer":
        """Serve (again, on the same port after a stop)."""
        self._http = _HttpServer(("127.0.0.1", self.port), self)
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="mjpeg server", daemon=True)
        self._thread.start()
        if not self._timer_started:
            self._timer_started = True
            self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut every open connection (as a crashed encoder would)."""
        http_server, self._http = self._http, None
        if http_server is None:
            return
        http_server.stopping.set()
        http_server.shutdown()
        with http_server.lock:
            connections = list(http_server.connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        http_server.server_close()
        self._thread.join(2.0)

    def close(self) -> None:
        """Stop for good (also cancels the lifetime timer)."""
        self._timer.cancel()
        self.stop()

    def __enter__(self) -> "MjpegServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
