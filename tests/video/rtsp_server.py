"""A real RTSP server for the video-source tests (GStreamer's gst-rtsp-server).

Run with the *system* Python, which has the GObject bindings (Debian packages
``python3-gst-1.0``, ``gir1.2-gst-rtsp-server-1.0``, ``gstreamer1.0-plugins-base`` and
``gstreamer1.0-plugins-good``)::

    /usr/bin/python3 tests/video/rtsp_server.py --port 8554 --lifetime 20

It serves ``rtsp://127.0.0.1:<port>/carm``: a live 160x120, 25 fps test picture as
RTP/JPEG (the codec of many network video encoders), prints ``READY <port>`` once it
listens, and quits by itself after ``--lifetime`` seconds. With ``--jpeg-folder DIR`` it
replays the JPEG files ``DIR/00000.jpg, 00001.jpg, ...`` in a loop at ``--fps`` instead
(a recorded C-arm output, as ``benchmarks/soak.py`` uses).
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

REPLAY = ("( multifilesrc location={folder}/%05d.jpg loop=true caps=image/jpeg,framerate={fps}/1 "
          "! jpegdec ! videoconvert ! video/x-raw,format=I420 ! jpegenc quality=90 ! rtpjpegpay name=pay0 pt=26 )")
PIPELINE = ("( videotestsrc is-live=true pattern=ball background-color=0xff808080 ! video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 "
            "! jpegenc quality=85 ! rtpjpegpay name=pay0 pt=26 )")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lifetime", type=float, default=20.0)
    parser.add_argument("--size", default="160x120")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--jpeg-folder", default=None)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    if args.jpeg_folder:
        factory.set_launch(REPLAY.format(folder=args.jpeg_folder, fps=args.fps))
    else:
        factory.set_launch(PIPELINE.format(w=width, h=height, fps=args.fps))
    factory.set_shared(True)
    server.get_mount_points().add_factory("/carm", factory)
    if server.attach(None) == 0:
        print(f"FAILED cannot listen on port {args.port}", flush=True)
        return 1
    loop = GLib.MainLoop()
    GLib.timeout_add(int(args.lifetime * 1000), loop.quit)
    print(f"READY {args.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
