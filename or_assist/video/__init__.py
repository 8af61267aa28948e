"""C-arm video: sources (device, URL, file, folder, DICOM), the capture thread, frame
preprocessing, new-shot detection. Imports only core.

Modules::

    preprocess/  From a grabbed video frame to a registration-ready shot: field of view, text and
    sources/     Frame sources: one open_source(spec) over devices, network streams, files, folders.
    capture      Background capture: always the newest frame, signal-state reports and reconnection.
    credentials  Credentials in video source specs: masked in every message, never stored in clear.
    shot_files   Reading a fluoroscopy shot from a file: PNG/TIFF/JPEG/BMP (8 or 16 bit) or DICOM.
    shot_settings  Settings of the new-shot detector.
    shots        New-shot detection: one event per new fluoroscopy exposure in a last-image-hold stream.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.video import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['preprocess', 'sources', 'capture', 'credentials', 'shot_files', 'shot_settings', 'shots'],
    submod_attrs={
        'capture': ['CaptureThread'],
        'credentials': ['PASSWORD_ENV', 'mask_credentials', 'strip_password', 'with_password', 'has_password'],
        'shot_files': ['DICOM_SUFFIXES', 'read_shot_image', 'read_shot_header', 'is_dicom_shot_file', 'dicom_to_image'],
        'shot_settings': ['ShotDetectorSettings'],
        'shots': ['ShotEvent', 'ShotDetector'],
    },
)
