"""``or-assist calibrate``: read phantom images, calibrate, write ``or_assist.geometry/1``, report.

:func:`calibrate_command` is what the CLI calls::

    or-assist calibrate IMAGES... --phantom P.json [--profile NAME] [--roi x,y,w,h] --out G.json

The report lists each image's state (beads found, identified and used, its
reprojection error, plate tilt), the geometry, and the video mapping: where the
collimated field lies in the frame (found by the field-of-view detector the caller passes
in: the CLI passes :func:`or_assist.video.preprocess.fov.detect_field_of_view`, which this
package, importing only core, does not import), and, with a profile, how many video pixels
one native detector pixel became (the grabber's scale).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from or_assist.core.geometry import save_geometry
from or_assist.errors import InputError, OrAssistError
from or_assist.calibration.solve import CalibrationResult, calibrate
from or_assist.calibration.phantom import load_bead_phantom

__all__ = ["DEFAULT_SOURCE_TO_ISOCENTER_MM", "read_image", "format_calibration", "calibrate_command"]

#: Used without a profile: the typical mobile C-arm value of the project's domain notes.
DEFAULT_SOURCE_TO_ISOCENTER_MM = 600.0
_DICOM_SUFFIXES = ("", ".dcm", ".dicom", ".ima")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A grey image from PNG/TIFF/JPEG/BMP (8 or 16 bit) or a 2D DICOM file.

    Returns
    -------
    (H, W) ndarray, uint8 or uint16 (DICOM: its stored values as float32).

    Raises
    ------
    InputError
        Missing or unreadable file, or not a 2D image.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found", str(p))
    if p.suffix.lower() in _DICOM_SUFFIXES:
        import SimpleITK as sitk

        try:
            arr = sitk.GetArrayFromImage(sitk.ReadImage(str(p))).astype(np.float32)
        except RuntimeError as exc:
            raise InputError(f"not a readable DICOM image ({str(exc).strip().splitlines()[-1]})", str(p)) from None
        arr = np.squeeze(arr)
        if arr.ndim != 2:
            raise InputError(f"expected a single 2D image, got an array of shape {arr.shape}", str(p))
        return arr
    data = np.fromfile(str(p), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_GRAYSCALE) if data.size else None
    if img is None:
        raise InputError("not a readable image (expected PNG, TIFF, JPEG, BMP or DICOM)", str(p))
    return img


def format_calibration(result: CalibrationResult, profile=None, fov=None) -> str:
    """A human-readable report of a calibration (see the module doc)."""
    g = result.geometry
    lines = []
    for im in result.images:
        if im.status == "ok":
            lines.append(f"  {im.name}: {im.n_detected} blobs, {im.n_identified} beads identified, {im.n_used} used; "
                         f"rms {im.rms_px:.3f} px, max {im.max_px:.3f} px; plate tilt {im.tilt_deg:.1f} deg"
                         + (" (on the detector cover)" if im.on_detector else ""))
        else:
            lines.append(f"  {im.name}: not used: {im.status}")
    rms, mx = result.reprojection_error_px
    px, py = result.pixel_spacing_mm
    out = ["calibration images:", *lines,
           f"reprojection error: rms {rms:.3f} px, max {mx:.3f} px over {result.n_beads} beads",
           f"SID {result.sid_mm:.1f} mm; pixel spacing {px:.5f} x {py:.5f} mm per image pixel "
           f"(focal length {g.fx:.1f} +- {result.focal_std_px[0]:.1f} px)",
           f"principal point ({g.principal_point_px[0]:.1f}, {g.principal_point_px[1]:.1f}) px in a "
           f"{g.width} x {g.height} image" + (f" (ROI x,y,w,h = {','.join(map(str, result.roi))} of the frame)"
                                             if result.roi else ""),
           "distortion: " + ("none" if g.distortion is None else
                             f"{result.distortion_model} [{', '.join(f'{c:.4g}' for c in g.distortion)}], "
                             f"moves beads by up to {result.max_distortion_px:.2f} px"),
           f"source-to-isocentre {g.source_to_isocenter_mm:g} mm "
           + (f"(from profile {profile.name})" if profile else "(default; not measured, give --profile)")]
    if fov is not None:
        if fov.shape == "circle":
            out.append(f"field of view: circle at ({fov.center_px[0]:.1f}, {fov.center_px[1]:.1f}) px, radius "
                       f"{fov.radius_px:.1f} px = {fov.radius_px * px:.1f} mm at the detector")
        else:
            u0, v0, u1, v1 = fov.box_px
            out.append(f"field of view: rectangle ({u0:.0f}, {v0:.0f})-({u1:.0f}, {v1:.0f}) px = "
                       f"{(u1 - u0) * px:.1f} x {(v1 - v0) * py:.1f} mm at the detector")
    if profile is not None:
        pg = profile.geometry
        scale = (pg.pixel_spacing_mm[0] / px, pg.pixel_spacing_mm[1] / py)
        out.append(f"video scale: {scale[0]:.3f} x {scale[1]:.3f} image pixels per native detector pixel "
                   f"({pg.pixel_spacing_mm[0]:g} mm)")
        dev = 100.0 * (result.sid_mm / pg.sid_mm - 1.0)
        if abs(dev) > 3.0:
            out.append(f"warning: SID differs from the profile's {pg.sid_mm:g} mm by {dev:+.1f} %; check "
                       "plate_to_detector_mm of the phantom and that it lay flat on the detector cover")
    out.extend(f"warning: {w}" for w in result.warnings)
    return "\n".join(out)


def calibrate_command(image_paths: Sequence[str | os.PathLike], phantom_path: str | os.PathLike,
                      out_path: str | os.PathLike, *, profile: str | None = None, roi=None,
                      source_to_isocenter_mm: float | None = None, distortion: str = "auto",
                      detect_fov: Callable[[np.ndarray], object] | None = None) -> str:
    """Calibrate from phantom image files and write the geometry (``or-assist calibrate``).

    Parameters
    ----------
    image_paths : sequence of path-like
        Frames of the bead phantom (PNG/TIFF/JPEG/BMP or DICOM), all the same size.
    phantom_path : path-like or str
        ``or_assist.bead_phantom/1`` file, or the name of one in ``calibration/phantoms``.
    out_path : path-like
        Where to write ``or_assist.geometry/1``.
    profile : str, optional
        C-arm profile (name or file): its source-to-isocentre distance is used, its SID
        and native pixel size are compared with the result.
    roi : "x,y,w,h" or (x, y, w, h), optional
        Crop the frames first (the geometry is then the crop's).
    source_to_isocenter_mm : float, optional
        Overrides the profile's; default 600 mm without a profile.
    distortion : {"auto", "none", "radial", "full"}
    detect_fov : callable(frame) -> FieldOfView, optional
        Finds the collimated field in the first image used (within the ROI) for the
        report (:func:`or_assist.video.preprocess.fov.detect_field_of_view`); an
        :class:`~or_assist.errors.OrAssistError` from it leaves the line out. None: no
        field-of-view line.

    Returns
    -------
    str
        The report (:func:`format_calibration`) and the path written.

    Raises
    ------
    InputError
        Unreadable images, phantom or profile, or a calibration that failed (why).
    """
    if isinstance(image_paths, (str, os.PathLike)) or not image_paths:
        raise InputError("give one or more image files", "images")
    images = [read_image(p) for p in image_paths]
    phantom = load_bead_phantom(phantom_path)
    prof = None
    nominal_sid = 1000.0
    s2i = DEFAULT_SOURCE_TO_ISOCENTER_MM
    if profile is not None:
        from or_assist.core.carm_profiles import load_profile

        prof = load_profile(profile)
        nominal_sid = prof.geometry.sid_mm
        s2i = prof.geometry.source_to_isocenter_mm
    if source_to_isocenter_mm is not None:
        s2i = source_to_isocenter_mm
    result = calibrate(images, phantom, source_to_isocenter_mm=s2i, roi=roi, distortion=distortion,
                       nominal_sid_mm=nominal_sid, names=[str(p) for p in image_paths])
    fov = None
    first = next(k for k, im in enumerate(result.images) if im.status == "ok")
    if detect_fov is not None:
        frame = images[first]
        if result.roi is not None:
            x, y, w, h = result.roi
            frame = frame[y:y + h, x:x + w]
        try:
            fov = detect_fov(frame)
        except OrAssistError:
            fov = None                                 # informational only
    written = save_geometry(result.geometry, out_path)
    text = format_calibration(result, prof, fov)
    return f"{text}\nwrote {written}"
