"""Video sources: one :class:`FrameSource` interface for every way to see the C-arm.

In the OR the app sees the C-arm only through its video output: a frame grabber
(HDMI / DVI / SDI to USB or PCIe; a V4L2, DirectShow or Media Foundation device), an IP
stream, or, away from the OR, a recording, a folder of exported images or the shot
simulator. :func:`open_source` turns a text spec into the right source;
:class:`~or_assist.video.capture.CaptureThread` runs it in the background.

============================  =============================================================
spec                          source
============================  =============================================================
``0``, ``/dev/video0``        :class:`DeviceSource` (``backend``, ``width``, ``height``,
                              ``fps``, ``fourcc``)
``rtsp://``, ``http://`` ...  :class:`UrlSource` (``open_timeout_s``, ``read_timeout_s``)
a video file                  :class:`FileSource` (``realtime``, ``loop``, ``fps``)
a folder of images            :class:`ImageFolderSource` (``fps``, ``realtime``, ``loop``,
                              ``pattern``)
``sim:<scenario>``            the shot simulator, once :mod:`or_assist.sim.scenario.spec`
                              is imported (it registers the ``sim:`` kind)
``dicom://AE@PORT``           :class:`~or_assist.video.sources.dicom.DicomSource`: the
                              C-arm's images over DICOM (``allow``, ``address``,
                              ``store_dir``, ``patient_check``, ``accept_any_patient``,
                              ``frames``)
============================  =============================================================

Every source also takes ``color`` (BGR frames instead of grey; off by default).

Further kinds of source are registered by prefix (:func:`register_source_kind`): this
package does not import whoever provides them. The shot simulator registers ``sim:`` when
:mod:`or_assist.sim.scenario.spec` is imported; the CLI imports it before it opens a
``sim:`` source.
"""

from __future__ import annotations

import inspect
import os
import re
import threading
from pathlib import Path
from typing import Callable

from or_assist.errors import InputError
from or_assist.video.sources.base import (FrameSource, SourceInfo)
from or_assist.video.sources.opencv import DeviceSource, FileSource, UrlSource, mask_url
from or_assist.video.sources.folder import ImageFolderSource

__all__ = ["open_source", "SIMULATOR_PREFIX", "check_recording_opens", "register_source_kind"]

SIMULATOR_PREFIX = "sim:"
"""Specs starting with this select the shot simulator (``or_assist.sim.scenario.spec``)."""

_SIMULATOR_MODULE = "or_assist.sim.scenario.spec"
_KINDS: dict[str, Callable[..., FrameSource]] = {}

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def _make(cls, spec_kind: str, first, options: dict) -> FrameSource:
    params = inspect.signature(cls).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    given = {k: v for k, v in options.items() if v is not None}
    if not accepts_any:
        names = [n for n in list(params)[1:] if params[n].kind is not inspect.Parameter.VAR_POSITIONAL]
        for key in given:
            if key not in names:
                raise InputError(f"does not apply to a {spec_kind} source; it takes {', '.join(names)}",
                                 f"option {key!r}")
    return cls(first, **given)


def register_source_kind(prefix: str, factory: Callable[..., FrameSource]) -> None:
    """Let :func:`open_source` open specs that start with ``prefix`` through ``factory``.

    Parameters
    ----------
    prefix : str
        E.g. ``"sim:"``; a later registration of the same prefix replaces the earlier one.
    factory : callable(spec, **options) -> FrameSource
        Called with the whole spec and the options that are not None; raises
        :class:`~or_assist.errors.InputError` for a spec or option it does not take.

    Raises
    ------
    InputError
        An empty prefix or a factory that is not callable.
    """
    if not isinstance(prefix, str) or not prefix.strip():
        raise InputError(f"expected a non-empty spec prefix such as 'sim:', got {prefix!r}", "prefix")
    if not callable(factory):
        raise InputError(f"expected a callable(spec, **options) -> FrameSource, got {type(factory).__name__}",
                         "factory")
    _KINDS[prefix] = factory


def _dicom_source(spec: str, **options) -> FrameSource:
    """The ``dicom://`` kind (pydicom and pynetdicom are imported only when one is opened)."""
    from or_assist.video.sources.dicom import DicomSource

    return _make(DicomSource, "DICOM", spec, options)


register_source_kind("dicom://", _dicom_source)


def _registered(text: str, options: dict) -> FrameSource | None:
    """The source a registered kind makes for ``text`` (None: no kind's prefix matches)."""
    prefix = max((p for p in _KINDS if text.startswith(p)), key=len, default=None)
    if prefix is None:
        if text.startswith(SIMULATOR_PREFIX):
            raise InputError(f"the simulator source needs the module {_SIMULATOR_MODULE}, which was not imported "
                             f"(it registers the {SIMULATOR_PREFIX} kind)", text)
        return None
    source = _KINDS[prefix](text, **{k: v for k, v in options.items() if v is not None})
    if not isinstance(source, FrameSource):
        raise InputError(f"the {prefix} source kind made a {type(source).__name__}, not a FrameSource", text)
    return source


def open_source(spec, **options) -> FrameSource:
    """Make the frame source a spec names (not opened yet: call ``open()`` or run it
    in a :class:`CaptureThread`).

    Parameters
    ----------
    spec : str, int or Path
        A device index (``0``, ``"0"``) or path (``/dev/video0``); a URL (``rtsp://``,
        ``http://``, ``https://``, ``udp://``, ...); a video file; a folder of images;
        or ``sim:<scenario>`` for the shot simulator.
    **options
        Passed to the source's constructor (see the table in the module docstring);
        options that are None are left out, so a CLI may pass all of its flags.

    Returns
    -------
    FrameSource

    Raises
    ------
    InputError
        An empty spec, a path that does not exist, an option the source does not take,
        or a simulator spec when ``or_assist.sim.scenario.spec`` was not imported.
    """
    if isinstance(spec, bool) or spec is None:
        raise InputError(f"expected a device index, device path, URL, video file or image folder, got {spec!r}",
                         "source")
    if isinstance(spec, int):
        return _make(DeviceSource, "device", spec, options)
    text = os.fspath(spec) if isinstance(spec, os.PathLike) else str(spec)
    text = text.strip()
    if not text:
        raise InputError("expected a device index, device path, URL, video file or image folder, got ''",
                         "source")
    source = _registered(text, options)
    if source is not None:
        return source
    if text.isdigit() or text.startswith("/dev/"):
        return _make(DeviceSource, "device", text, options)
    if _URL.match(text):
        return _make(UrlSource, "url", text, options)
    path = Path(text).expanduser()
    if path.is_dir():
        return _make(ImageFolderSource, "image folder", path, options)
    if path.is_file():
        return _make(FileSource, "video file", path, options)
    hint = ""
    if "@" in text and not text.startswith(("/", ".")):
        hint = " (a stream address needs its scheme, e.g. rtsp://user@host/stream)"
    raise InputError("no such file or folder; expected a device index (0), a device path (/dev/video0), "
                     "a URL (rtsp://..., http://...), a video file, an image folder or sim:<scenario>" + hint,
                     mask_url(text))


def check_recording_opens(source: FrameSource, timeout_s: float) -> SourceInfo | None:
    """Open a recording (a video file or an image folder) once and close it again, to
    learn before a case starts whether it yields a frame at all.

    A file or folder that is there but holds no decodable frame (an empty folder, files
    that do not decode, a 0-byte or damaged video) fails at once with its own reason; a
    recording that neither opens nor fails within ``timeout_s`` (a stalled network
    share) fails then. Live sources (devices, streams, the simulator) are not checked:
    they may start sending later, and are retried while the case runs.

    Parameters
    ----------
    source : FrameSource
        Not open.
    timeout_s : float
        Seconds the opening may take.

    Returns
    -------
    SourceInfo or None
        What the recording delivers; None for a live source.

    Raises
    ------
    InputError
        Naming the source (password masked) and why it yields no frame.
    """
    if not isinstance(source, (FileSource, ImageFolderSource)):
        return None
    outcome: dict = {}

    def attempt() -> None:
        try:
            outcome["info"] = source.open()
        except Exception as exc:  # InputError from the source, or a backend failure
            outcome["error"] = exc
        finally:
            try:
                source.close()
            except Exception as exc:
                outcome.setdefault("error", exc)

    worker = threading.Thread(target=attempt, name=f"check {source.name}", daemon=True)
    worker.start()
    worker.join(float(timeout_s))
    if worker.is_alive():
        raise InputError(f"did not open within {float(timeout_s):g} s (a stalled disk or network share?); "
                         f"gave up", source.name)
    error = outcome.get("error")
    if isinstance(error, InputError):
        raise error
    if error is not None:
        raise InputError(f"could not be opened ({type(error).__name__}: {mask_url(error)})", source.name)
    return outcome["info"]
