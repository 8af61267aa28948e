"""Registering one shot given as files: read the inputs, register, write the result.

What ``or-assist register`` computes (:mod:`or_assist.cli.register` prints it). The result
is ``or_assist.registration/1``; a shot that cannot be registered confidently is a result
with ``success: false`` and a ``reason``; unreadable or malformed inputs raise
:class:`~or_assist.errors.InputError`.
"""

from __future__ import annotations

import os

import numpy as np

from or_assist.errors import InputError
from or_assist.register.pipeline import RegistrationResult
from or_assist.register.settings import DEFAULT_TIME_BUDGET_S, RegistrationSettings

__all__ = ["register_files", "register_pair_files"]


def register_files(ct_path: str | os.PathLike, geometry_path: str | os.PathLike | None, image_path: str | os.PathLike,
                   init_path: str | os.PathLike | None, out_path: str | os.PathLike, *,
                   plan_path: str | os.PathLike | None = None, library_path: str | os.PathLike | None = None,
                   polarity: str = "bone-dark", time_budget_s: float | None = DEFAULT_TIME_BUDGET_S,
                   notes: list | None = None, dewarp_path: str | os.PathLike | None = None) -> RegistrationResult:
    """Register one shot and write ``or_assist.registration/1`` to ``out_path``.

    Parameters
    ----------
    ct_path : path-like
        The patient's CT (file or DICOM folder).
    geometry_path : path-like or None
        ``or_assist.geometry/1`` of the image's pixels (the video frame's geometry when
        the image is a whole frame). None for a DICOM shot with geometry tags: the header's
        geometry (:func:`~or_assist.dicom.header_geometry.resolve_geometry`; with both,
        disagreements are noted).
    image_path : path-like
        The shot (:func:`~or_assist.video.shot_files.read_shot_image`).
    init_path : path-like or None
        ``or_assist.pose/1`` (or a previous ``or_assist.registration/1``) to start from.
        None for a DICOM shot with positioner angles: the header's beam
        (:func:`~or_assist.dicom.header_geometry.start_pose_from_header`) through the plan's
        implants (their mean entry/apex point), else through the CT's centre.
    out_path : path-like
        Where to write the result.
    plan_path : path-like, optional
        The plan; a library given is checked against it, and the error is estimated at
        its implants' entry and apex points (else at the isocentre).
    library_path : path-like, optional
        A view library (``or-assist views``) whose nearby views seed the start.
    polarity : {'bone-dark', 'bone-bright', 'auto'}
    time_budget_s : float or None
        Wall time the registration may take (None: no limit; see
        :class:`~or_assist.register.settings.RegistrationSettings`).
    notes : list, optional
        Warnings (a DICOM header disagreeing with the geometry file) are appended here.
    dewarp_path : path-like, optional
        ``or_assist.dewarp/1`` of the C-arm (``or-assist calibrate --dewarp``): the shot is
        dewarped before registration (it must have the calibrated frame size); the
        geometry is then the one calibrated with it.

    Returns
    -------
    RegistrationResult
        What was written (also when it reports ``success=False``).

    Raises
    ------
    InputError
        Unreadable or malformed input files or arguments.
    """
    from or_assist.core import jsonio
    from or_assist.core.ct.load import load_ct
    from or_assist.register.pipeline import Registrar
    from or_assist.core.validate import check_choice
    from or_assist.core.vocabulary import POLARITY_SETTINGS

    check_choice(polarity, POLARITY_SETTINGS, "--polarity")
    dewarp = _load_dewarp(dewarp_path)
    frame, geometry, init_pose, header = _shot_inputs(image_path, geometry_path, init_path, "--init", notes,
                                                      name_file=False, dewarp=dewarp)
    if geometry_path is None:
        geometry_path = f"the DICOM header of {image_path}"
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
    if init_pose is None:
        from or_assist.dicom.header_geometry import start_pose_from_header

        if plan is not None and plan.implants:
            iso = np.mean([p for imp in plan.implants for p in (imp.entry_lps_mm, imp.apex_lps_mm)], axis=0)
        else:
            iso = _ct_centre_lps_mm(ct)
        init_pose = start_pose_from_header(header, iso, geometry)
    settings = RegistrationSettings(time_budget_s=time_budget_s)
    targets = None
    if plan is not None and plan.implants:  # the error is estimated at the planned implants
        targets = np.stack([p for imp in plan.implants for p in (imp.entry_lps_mm, imp.apex_lps_mm)])
    result = Registrar(ct, geometry, settings).register(frame, init_pose, polarity=polarity, library=library,
                                                        target_lps_mm=targets)
    jsonio.write_json(out_path, result.to_dict())
    return result


def _ct_centre_lps_mm(ct) -> np.ndarray:
    """The LPS point at the centre of the CT's box (the mean of its corners)."""
    return np.asarray(ct.corners_lps_mm(), dtype=float).mean(axis=0)


def _load_dewarp(dewarp_path):
    if dewarp_path is None:
        return None
    from or_assist.calibration.dewarp import load_dewarp

    return load_dewarp(dewarp_path)


def _shot_inputs(image_path, geometry_path, init_path, init_arg: str, notes: list | None, *, name_file: bool = True,
                 dewarp=None):
    """(frame, geometry, start pose or None, header) of one shot file; a missing start without
    positioner angles is an InputError naming ``init_arg``. ``name_file``: warnings and that error
    name the image file (two shots), else "the image" (one shot). ``dewarp``: applied to a
    video frame (not to a DICOM shot, whose header gives its own geometry: noted)."""
    from or_assist.core.geometry import load_geometry
    from or_assist.core.pose import load_pose
    from or_assist.dicom.header_geometry import resolve_geometry
    from or_assist.video.shot_files import read_shot_header, read_shot_image

    geometry = load_geometry(geometry_path) if geometry_path is not None else None
    init_pose = load_pose(init_path) if init_path is not None else None
    frame = read_shot_image(image_path)
    header = read_shot_header(image_path)
    if dewarp is not None:
        if header is None:
            frame = dewarp.apply(frame, str(image_path))
        else:
            if notes is not None:
                notes.append(f"{image_path}: the dewarp is for the video frames of the C-arm it was calibrated "
                             "with; not applied to this DICOM shot")
    geometry, warnings = resolve_geometry(header, frame.shape, geometry)
    if notes is not None:
        notes.extend(f"{image_path}: {w}" if name_file else w for w in warnings)
    if init_pose is None and (header is None or header.primary_angle_deg is None):
        what = str(image_path) if name_file else "the image"
        why = (f"{what} is not a DICOM shot" if header is None
               else f"the DICOM header of {what} has no PositionerPrimaryAngle")
        raise InputError(f"no starting pose: {why}; give a pose file (or_assist.pose/1)", init_arg)
    return frame, geometry, init_pose, header


def register_pair_files(ct_path: str | os.PathLike, image_paths, init_paths, out_paths, *, geometry_paths=(None, None),
                        plan_path: str | os.PathLike | None = None, polarity: str = "bone-dark",
                        time_budget_s: float | None = DEFAULT_TIME_BUDGET_S, notes: list | None = None,
                        dewarp_path: str | os.PathLike | None = None):
    """Register two shots of different views jointly (:mod:`or_assist.register.joint`) and
    write one ``or_assist.registration/1`` per shot (each with a ``"joint"`` object).

    The relative C-arm motion between the shots is taken from their starts
    (``init2 init1^-1``): pose files, or DICOM headers' positioner angles (both through the
    plan's implants or the CT's centre), known to
    :class:`~or_assist.register.joint.JointSettings`' tolerances.

    Parameters
    ----------
    ct_path : path-like
    image_paths : (path-like, path-like)
        The two shots.
    init_paths : (path-like or None, path-like or None)
        Their starts (None for a DICOM shot with positioner angles); a missing one raises
        InputError naming ``--init`` or ``--second-init``.
    out_paths : (path-like, path-like)
        Where the two results go.
    geometry_paths : (path-like or None, path-like or None)
        ``or_assist.geometry/1`` of each (None: from its DICOM header; the second falls
        back on the first's file when it is not DICOM).
    plan_path : path-like, optional
        The plan (errors estimated at its implants).
    polarity : {'bone-dark', 'bone-bright', 'auto'}
        Of both shots.
    time_budget_s : float or None
        Per shot (the pair gets twice this; None: no limit).
    notes : list, optional
        Warnings are appended here.
    dewarp_path : path-like, optional
        ``or_assist.dewarp/1`` of the C-arm, applied to both video shots.

    Returns
    -------
    JointResult
    """
    from or_assist.core import jsonio
    from or_assist.core.ct.load import load_ct
    from or_assist.core.validate import check_choice
    from or_assist.core.vocabulary import POLARITY_SETTINGS
    from or_assist.register.joint import JointRegistrar

    check_choice(polarity, POLARITY_SETTINGS, "--polarity")
    g1, g2 = geometry_paths
    dewarp = _load_dewarp(dewarp_path)
    first = _shot_inputs(image_paths[0], g1, init_paths[0], "--init", notes, dewarp=dewarp)
    from or_assist.video.shot_files import read_shot_header

    second_geometry = g2 if g2 is not None or read_shot_header(image_paths[1]) is not None else g1
    second = _shot_inputs(image_paths[1], second_geometry, init_paths[1], "--second-init", notes, dewarp=dewarp)
    plan = None
    targets = None
    if plan_path is not None:
        from or_assist.core.plan import load_plan

        plan = load_plan(plan_path)
        if plan.implants:
            targets = np.stack([p for imp in plan.implants for p in (imp.entry_lps_mm, imp.apex_lps_mm)])
    ct = load_ct(ct_path)
    starts = []
    for frame, geometry, init_pose, header in (first, second):
        if init_pose is None:
            from or_assist.dicom.header_geometry import start_pose_from_header

            iso = targets.mean(axis=0) if targets is not None else _ct_centre_lps_mm(ct)
            init_pose = start_pose_from_header(header, iso, geometry)
        starts.append(init_pose)
    settings = RegistrationSettings(time_budget_s=time_budget_s)
    joint = JointRegistrar(ct, first[1], second[1], settings)
    result = joint.register(first[0], starts[0], second[0], starts[1], polarity=polarity, target_lps_mm=targets)
    for doc, path in zip(result.to_dicts(), out_paths):
        jsonio.write_json(path, doc)
    return result
