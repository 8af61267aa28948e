"""Frame sources: one open_source(spec) over devices, network streams, files, folders.

Modules::

    base     The frame-source interface: states, frames, source descriptions and the base class.
    dicom    The C-arm's DICOM node as a frame source: ``dicom://AE@PORT``.
    devices  Listing capture devices and probing a source (``or-assist sources``).
    folder   Replay of a folder of still images (exported fluoroscopy frames) as a video source.
    opencv   Frame sources read through ``cv2.VideoCapture``: capture devices, IP streams, video files.
    pacer    Real-time pacing of replayed frames (video files, image folders, the simulator).
    spec     Video sources: one :class:`FrameSource` interface for every way to see the C-arm.
    v4l2     Linux V4L2 device queries through ``ioctl`` (no extra dependency).

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.video.sources import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['base', 'devices', 'dicom', 'folder', 'opencv', 'pacer', 'spec', 'v4l2'],
    submod_attrs={
        'base': ['SignalState', 'Frame', 'SourceInfo', 'DeviceMode', 'FrameSource', 'fourcc_to_str', 'fourcc_code', 'BACKENDS', 'backend_id'],
        'devices': ['list_devices', 'probe_source', 'ProbeReport'],
        'dicom': ['DICOM_PREFIX', 'DicomFrame', 'DicomSource', 'parse_dicom_spec', 'display_u8', 'full_range_u16',
                  'open_dicom_source'],
        'folder': ['ImageFolderSource', 'IMAGE_SUFFIXES', 'natural_key'],
        'opencv': ['DeviceSource', 'UrlSource', 'FileSource', 'default_device_backend', 'device_paths', 'mask_url', 'quiet_backend_logs'],
        'pacer': ['Pacer'],
        'spec': ['open_source', 'SIMULATOR_PREFIX', 'check_recording_opens', 'register_source_kind'],
        'v4l2': ['V4l2Device', 'query_device', 'ioc', 'VIDIOC_QUERYCAP', 'VIDIOC_ENUM_FMT', 'VIDIOC_ENUM_FRAMESIZES', 'VIDIOC_ENUM_FRAMEINTERVALS'],
    },
)
