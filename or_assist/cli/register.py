"""``or-assist register``: register one shot (image file) to the CT and write the result.

    or-assist register --ct CT --geometry G.json --image SHOT.png --init POSE.json
                       --out RESULT.json [--plan PLAN.json] [--library LIB]
                       [--polarity bone-dark|bone-bright]

The result is ``or_assist.registration/1``. A shot that cannot be registered confidently
is a result with ``success: false`` and a ``reason`` (exit status 0); unreadable or
malformed inputs raise :class:`~or_assist.errors.InputError` (the CLI's exit status 2).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from or_assist.errors import InputError

__all__ = ["read_shot_image", "register_command"]


def read_shot_image(path: str | os.PathLike) -> np.ndarray:
    """Read a shot: PNG/TIFF/JPEG (8 or 16 bit, grey or colour) or a DICOM file.

    Returns
    -------
    (H, W) uint8 or uint16 ndarray (colour images are averaged to grey)

    Raises
    ------
    InputError
        Missing or unreadable file.
    """
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InputError("image file not found", str(p))
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        img = _read_dicom(p)
    if img is None:
        raise InputError("cannot read the image (expected a PNG, TIFF, JPEG or DICOM file)", str(p))
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[..., 0]
        elif img.shape[2] in (3, 4):
            img = img[..., :3].mean(axis=2).round().astype(img.dtype)
        else:
            raise InputError(f"unsupported channel count {img.shape[2]}", str(p))
    if img.ndim != 2 or img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"expected an 8- or 16-bit grey image, got {img.dtype} with shape {img.shape}", str(p))
    return img


def _read_dicom(path: Path):
    import SimpleITK as sitk

    try:
        img = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    except RuntimeError:
        return None
    img = np.squeeze(img)
    if img.ndim != 2:
        return None
    lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        return np.zeros(img.shape, np.uint16)
    return np.round((img.astype(np.float64) - lo) / (hi - lo) * 65535).astype(np.uint16)


def register_command(ct_path: str | os.PathLike, geometry_path: str | os.PathLike, image_path: str | os.PathLike,
                     init_path: str | os.PathLike, out_path: str | os.PathLike, *,
                     plan_path: str | os.PathLike | None = None, library_path: str | os.PathLike | None = None,
                     polarity: str = "bone-dark") -> dict:
    """Register one shot and write ``or_assist.registration/1`` to ``out_path``.

    Parameters
    ----------
    ct_path : path-like
        The patient's CT (file or DICOM folder).
    geometry_path : path-like
        ``or_assist.geometry/1`` of the image's pixels (the video frame's geometry when
        the image is a whole frame).
    image_path : path-like
        The shot (:func:`read_shot_image`).
    init_path : path-like
        ``or_assist.pose/1`` (or a previous ``or_assist.registration/1``) to start from.
    out_path : path-like
        Where to write the result.
    plan_path : path-like, optional
        The plan; a library given is checked against it.
    library_path : path-like, optional
        A view library (``or-assist views``) whose nearby views seed the start.
    polarity : {'bone-dark', 'bone-bright'}

    Returns
    -------
    dict
        The written document plus ``"summary"`` (one line) and ``"out"`` (Path).

    Raises
    ------
    InputError
        Unreadable or malformed input files or arguments.
    """
    from or_assist.core import jsonio
    from or_assist.core.ct.load import load_ct
    from or_assist.core.geometry import load_geometry, load_pose
    from or_assist.register.pipeline import Registrar
    from or_assist.core.validate import check_choice
    from or_assist.core.vocabulary import POLARITY_SETTINGS

    check_choice(polarity, POLARITY_SETTINGS, "--polarity")
    geometry = load_geometry(geometry_path)
    init_pose = load_pose(init_path)
    frame = read_shot_image(image_path)
    plan = None
    if plan_path is not None:
        from or_assist.core.plan import load_plan

        plan = load_plan(plan_path)
    library = None
    if library_path is not None:
        from or_assist.render.views.io import load_view_library

        library = load_view_library(library_path, plan)
        if abs(library.geometry.sid_mm - geometry.sid_mm) > 1e-6 or \
                abs(library.geometry.source_to_isocenter_mm - geometry.source_to_isocenter_mm) > 1e-6:
            raise InputError(f"was built for another C-arm (SID {library.geometry.sid_mm:g} mm, source-isocentre "
                             f"{library.geometry.source_to_isocenter_mm:g} mm) than {geometry_path}",
                             str(library_path))
    ct = load_ct(ct_path)
    registrar = Registrar(ct, geometry)
    result = registrar.register(frame, init_pose, polarity=polarity, library=library)
    doc = result.to_dict()
    jsonio.write_json(out_path, doc)
    if result.success:
        summary = (f"registered in {result.seconds:.2f} s ({result.metric} {result.similarity:.3f}); "
                   f"wrote {out_path}")
    else:
        summary = f"registration failed: {result.reason}; wrote {out_path}"
    return {**doc, "summary": summary, "out": Path(out_path)}
