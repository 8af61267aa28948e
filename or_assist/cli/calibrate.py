"""``or-assist calibrate``: read phantom images, calibrate, write ``or_assist.geometry/1``, report.

    or-assist calibrate IMAGES... --phantom P.json [--profile NAME] [--roi x,y,w,h] --out G.json
                        [--dewarp D.json [--mount-angle-deg A]]

The report (:func:`format_calibration`) lists each image's state
(beads found, identified and used, its reprojection error, plate tilt), the geometry, and
the video mapping: where the collimated field lies in the frame, and, with a profile, how
many video pixels one native detector pixel became (the grabber's scale).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from or_assist.core.vocabulary import DISTORTION_MODELS
from or_assist.cli._parser import emit
from or_assist.errors import InputError

__all__ = ["calibrate_command", "format_calibration", "add_parsers", "cmd_calibrate"]


def calibrate_command(image_paths: Sequence[str | os.PathLike], phantom_path: str | os.PathLike,
                      out_path: str | os.PathLike, *, profile: str | None = None, roi=None,
                      source_to_isocenter_mm: float | None = None, distortion: str = "auto",
                      dewarp_path: str | os.PathLike | None = None, mount_angle_deg: float | None = None) -> str:
    """Calibrate from phantom image files and write the geometry.

    Parameters
    ----------
    image_paths : sequence of path-like
        Frames of the bead phantom (:func:`~or_assist.video.shot_files.read_shot_image`:
        PNG/TIFF/JPEG/BMP or DICOM), all the same size.
    phantom_path : path-like or str
        ``or_assist.bead_phantom/1`` file, or the name of one in ``calibration/phantoms``.
    out_path : path-like
        Where to write ``or_assist.geometry/1``.
    profile : str, optional
        C-arm profile (name or file): its source-to-isocentre distance is used, its SID
        and native pixel size are compared with the result. Without one, DICOM images with
        geometry tags give the nominal SID and the source-isocentre distance
        (DistanceSourceToPatient), and the result is compared with their header geometry
        (:func:`~or_assist.dicom.header_geometry.compare_geometry`: a warning line each).
    roi : "x,y,w,h" or (x, y, w, h), optional
        Crop the frames first (the geometry is then the crop's).
    source_to_isocenter_mm : float, optional
        Overrides the profile's; default (without a profile) the typical mobile C-arm's
        :data:`~or_assist.core.view_poses.DEFAULT_SOURCE_TO_ISOCENTER_MM`, 600 mm.
    distortion : {"auto", "none", "radial", "full"}
    dewarp_path : path-like, optional
        Also measure the image intensifier's S-distortion and write it as
        ``or_assist.dewarp/1`` here (:mod:`or_assist.calibration.dewarp`); the geometry is
        then the one that holds in dewarped frames, without a lens model (the dewarp holds
        all the distortion). Needs an image with the phantom lying
        on the detector cover.
    mount_angle_deg : float, optional
        With ``dewarp_path``: the phantom's fixed orientation on the intensifier (its +x
        axis from the image's +u axis towards +v), so the dewarp includes the distortion's
        twist; without it the twist is not measured (said in the report).

    Returns
    -------
    str
        The report and the path written.

    Raises
    ------
    InputError
        Unreadable images, phantom or profile, or a calibration that failed (why).
    """
    from or_assist.calibration.phantom import load_bead_phantom
    from or_assist.calibration.solve import calibrate
    from or_assist.core.geometry import save_geometry
    from or_assist.core.view_poses import DEFAULT_SOURCE_TO_ISOCENTER_MM
    from or_assist.dicom.header_geometry import compare_geometry
    from or_assist.errors import OrAssistError
    from or_assist.video.shot_files import read_shot_image

    if isinstance(image_paths, (str, os.PathLike)) or not image_paths:
        raise InputError("give one or more image files", "images")
    images = [read_shot_image(p) for p in image_paths]
    header_geometry = _header_geometry(image_paths, images)
    phantom = load_bead_phantom(phantom_path)
    prof = None
    nominal_sid = 1000.0
    s2i = DEFAULT_SOURCE_TO_ISOCENTER_MM
    if profile is not None:
        from or_assist.core.carm_profiles import load_profile

        prof = load_profile(profile)
        nominal_sid = prof.geometry.sid_mm
        s2i = prof.geometry.source_to_isocenter_mm
    elif header_geometry is not None:
        nominal_sid = header_geometry.sid_mm
        s2i = header_geometry.source_to_isocenter_mm
    if source_to_isocenter_mm is not None:
        s2i = source_to_isocenter_mm
    kw = dict(roi=roi, nominal_sid_mm=nominal_sid, names=[str(p) for p in image_paths])
    dewarp = None
    if dewarp_path is not None:
        from or_assist.calibration.dewarp import calibrate_with_dewarp

        if distortion not in ("auto", "none"):
            raise InputError("a dewarp holds all the distortion; leave --distortion out", "--distortion")
        result, dewarp = calibrate_with_dewarp(images, phantom, source_to_isocenter_mm=s2i,
                                               mount_angle_deg=mount_angle_deg, **kw)
    elif mount_angle_deg is not None:
        raise InputError("only means something with --dewarp (the dewarp's twist)", "--mount-angle-deg")
    else:
        result = calibrate(images, phantom, source_to_isocenter_mm=s2i, distortion=distortion, **kw)
    fov = None
    first = next(k for k, im in enumerate(result.images) if im.status == "ok")
    try:
        from or_assist.video.preprocess.fov import detect_field_of_view

        frame = images[first]
        if result.roi is not None:
            x, y, w, h = result.roi
            frame = frame[y:y + h, x:x + w]
        fov = detect_field_of_view(frame)
    except OrAssistError:
        fov = None                                     # informational only
    written = save_geometry(result.geometry, out_path)
    text = format_calibration(result, prof, fov)
    if dewarp is not None:
        from or_assist.calibration.dewarp import save_dewarp

        save_dewarp(dewarp_path, dewarp)
        text += f"\n{dewarp.describe()}\nwrote {dewarp_path}"
    if header_geometry is not None and result.roi is None:
        text += "".join(f"\nwarning: {w}" for w in compare_geometry(header_geometry, result.geometry))
    return f"{text}\nwrote {written}"


def _header_geometry(image_paths, images):
    """The geometry of the first DICOM image with geometry tags (None when there is none)."""
    from or_assist.dicom.header_geometry import geometry_from_header
    from or_assist.video.shot_files import read_shot_header

    for path, image in zip(image_paths, images):
        header = read_shot_header(path)
        geometry = geometry_from_header(header, image.shape) if header is not None else None
        if geometry is not None:
            return geometry
    return None


def format_calibration(result, profile=None, fov=None) -> str:
    """A human-readable report of a calibration (see the module doc).

    Parameters
    ----------
    result : CalibrationResult
        :func:`~or_assist.calibration.solve.calibrate`'s result.
    profile : CArmProfile, optional
        The C-arm profile given: the source-isocentre distance's origin and the video scale.
    fov : FieldOfView, optional
        The field of view found in the first usable image.
    """
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


def cmd_calibrate(args) -> int:
    """Calibrate and print the report."""
    emit(calibrate_command(args.images, args.phantom, args.out, profile=args.profile, roi=args.roi,
                           source_to_isocenter_mm=args.source_to_isocenter_mm, distortion=args.distortion,
                           dewarp_path=args.dewarp, mount_angle_deg=args.mount_angle_deg))
    return 0


def add_parsers(sub) -> None:
    """Add ``calibrate``."""
    s = sub.add_parser("calibrate", help="calibrate a C-arm + grabber from bead-phantom images; writes or_assist.geometry/1")
    s.add_argument("images", nargs="+", help="bead phantom images (PNG/TIFF/DICOM frames as grabbed)")
    s.add_argument("--phantom", required=True, help="bead phantom name (calibration/phantoms) or JSON path")
    s.add_argument("--profile", default=None, help="C-arm profile for the source-isocentre distance and a report")
    s.add_argument("--roi", default=None, help="crop every frame first: x,y,w,h in video pixels")
    s.add_argument("--source-to-isocenter-mm", type=float, default=None, help="override (not observable from the phantom)")
    s.add_argument("--distortion", choices=DISTORTION_MODELS, default="auto")
    s.add_argument("--out", required=True, type=Path, help="or_assist.geometry/1 output")
    s.add_argument("--dewarp", default=None, type=Path,
                   help="also measure the intensifier's S-distortion: or_assist.dewarp/1 output (then use it with "
                        "register --dewarp)")
    s.add_argument("--mount-angle-deg", default=None, type=float,
                   help="with --dewarp: the phantom's fixed orientation on the intensifier (degrees, its +x axis "
                        "from the image's +u towards +v), so the dewarp includes the twist")
    s.set_defaults(func=cmd_calibrate)
