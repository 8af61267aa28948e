"""The guide pin against the plan in one or two registered shots given as files.

What ``or-assist pin`` computes (:mod:`or_assist.cli.pin` prints its summary):

    or-assist pin --ct CT --geometry G.json --plan PLAN --implant ID
                  --shot SHOT.png POSE.json [--shot SHOT2.png POSE2.json]
                  --out DEV.json [--overlay OUT.png]

``POSE.json`` is an ``or_assist.pose/1`` (a known pose) or the
``or_assist.registration/1`` written by ``or-assist register``; a registration with
``success: false`` gives that shot no plan overlay and no deviation. Each shot is read by
:func:`~or_assist.video.shot_files.read_shot_image` and preprocessed
(:func:`or_assist.video.preprocess.shot.preprocess_shot`: field of view, text,
polarity, orientation), the active implant's pin is detected with its planned axis as
the prior, and its 2-D deviation and cue are computed; with two shots the pin is
triangulated (:func:`or_assist.guidance.triangulate.two_view_deviation`) unless that is
refused (the reason is written). The output is ``or_assist.pin_deviation/1``:

* ``shots``: per shot ``image``, ``pose``, ``registration_ok``, ``pin`` (the detection
  in the preprocessed image's pixels, or null), ``deviation_2d``, ``cue``, ``error``;
* ``deviation_3d``: ``tip_lps_mm``, ``direction``, ``apex_deviation_mm``, ``angle_deg``,
  ``uncertainty`` and more (:meth:`Deviation3D.to_dict`), with ``cue``; or null with
  ``deviation_3d_refused`` saying why.

The assumed uncertainty of a registered pose is :data:`REGISTERED_POSE_SIGMA`
(1 mm, 0.5 deg): ``benchmarks/registration.py`` measures the reported successes on
simulated shots of the real CT at rms 0.61 mm along the beam, 0.06-0.08 mm across it and
0.09 deg; the margin is for real shots, whose image formation the simulator only
approximates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from or_assist.errors import InputError

__all__ = ["PIN_DEVIATION_SCHEMA", "REGISTERED_POSE_SIGMA", "PinDeviationFiles", "pin_deviation_files",
           "read_pose_or_registration"]

PIN_DEVIATION_SCHEMA = "or_assist.pin_deviation/1"
#: (mm, deg) 1-sigma pose uncertainty assumed for a successful registration (module doc).
REGISTERED_POSE_SIGMA = (1.0, 0.5)


def read_pose_or_registration(path: str | os.PathLike):
    """``(pose or None, registered: bool, reason or None)`` from a pose or registration file."""
    from or_assist.core import jsonio
    from or_assist.core.pose import Pose, load_pose

    doc = jsonio.read_json(path)
    if isinstance(doc, dict) and doc.get("schema") == "or_assist.registration/1":
        ok = jsonio.field_bool(doc, "success", str(path))
        if not ok:
            return None, True, str(doc.get("reason") or "the registration reported failure")
        return Pose.from_dict(doc, str(path)), True, None
    return load_pose(path), False, None


def _one_shot(frame, pose, registered, reason, geometry, implant, plan, thresholds, polarity, image_path):
    from or_assist.guidance.shot_guidance import guide_shot
    from or_assist.video.preprocess.shot import PreprocessSettings, preprocess_shot

    pre = preprocess_shot(frame, geometry, PreprocessSettings(polarity=polarity, mask_metal=False,
                                                             mask_saturated=False, normalise=False))
    entry = {"image": str(image_path), "registration_ok": pose is not None, "pose_source":
             "registration" if registered else "known", "polarity": pre.polarity, "pin": None,
             "deviation_2d": None, "cue": None, "error": None}
    state = {"pre": pre, "pose": pose, "detection": None, "deviation": None, "cue": None}
    if pose is None:
        entry["error"] = f"registration failed: {reason}; no plan overlay and no deviation for this shot"
        return entry, state
    g = guide_shot(pre, implant, pose, plan.landmarks, thresholds)
    if not g.axis_in_field:
        raise InputError(f"implant {implant.id!r}'s planned axis projects outside the field of view of this "
                         "shot; centre the C-arm on the planned trajectory", str(image_path))
    state.update(detection=g.detection, deviation=g.deviation, cue=g.cue)
    if g.detection is None:
        entry["error"] = g.problem
        return entry, state
    entry["pin"] = g.detection.to_dict()
    if g.detection.tip_at_border:
        entry["error"] = ("the pin's tip is at the edge of the field of view (it may lie outside the image): "
                          "centre the C-arm on the pin tip")
    entry["deviation_2d"] = g.deviation.to_dict()
    entry["cue"] = g.cue.to_dict()
    return entry, state


def _overlay_image(state, plan, implant_id, cue_3d=None):
    from or_assist.guidance.overlay import draw_overlay, draw_text_block

    pre = state["pre"]
    # the preprocessed image is attenuation-like (0-1); show it bone dark
    grey = np.clip(255.0 * (1.0 - pre.image), 0, 255)
    grey = np.where(pre.fov.mask_u8(pre.image.shape, 0.0).astype(bool), grey, 0).astype(np.uint8)
    img = draw_overlay(grey, state["pose"] is not None, pose=state["pose"], geometry=pre.geometry,
                       implants=plan.implants, active_id=implant_id, detection=state["detection"],
                       deviation=state["deviation"], cue=state["cue"],
                       status=None if state["detection"] is not None or state["pose"] is None else "no pin detected")
    if cue_3d is not None:
        lines = ["3-D (two shots): " + cue_3d.lines[0]] + list(cue_3d.lines[1:]) + list(cue_3d.warnings)
        draw_text_block(img, lines, origin_px=(8, img.shape[0] - 8 - 60 * len(lines)), align="left",
                        colours=[cue_3d.colour_bgr] + [(255, 255, 255)] * (len(lines) - 1))
    return img


@dataclass(frozen=True)
class PinDeviationFiles:
    """What :func:`pin_deviation_files` wrote.

    Attributes
    ----------
    doc : dict
        The ``or_assist.pin_deviation/1`` document (module doc).
    out : Path
        Where it was written.
    overlay : Path or None
        The overlay PNG, when one was asked for.
    """

    doc: dict
    out: Path
    overlay: Path | None = None


def pin_deviation_files(ct_path: str | os.PathLike, geometry_path: str | os.PathLike,
                        plan_path: str | os.PathLike, implant_id: str, shots, out_path: str | os.PathLike, *,
                        overlay_path: str | os.PathLike | None = None, polarity: str = "auto",
                        thresholds=None, allow_ct_mismatch: bool = False, dewarp=None) -> PinDeviationFiles:
    """The pin in one or two shots against the plan (module doc); writes ``out_path``.

    Parameters
    ----------
    ct_path : path-like
        The CT the plan was made on (checked against the plan's SHA-256).
    geometry_path : path-like or CArmGeometry
        ``or_assist.geometry/1`` of the shots' frames (or the geometry itself, e.g. a DICOM
        shot's header geometry).
    plan_path : path-like
        ``or_assist.plan/1``.
    implant_id : str
        The active implant.
    shots : sequence of (image path, pose path)
        One or two shots; the pose file is ``or_assist.pose/1`` or ``or_assist.registration/1``.
    out_path : path-like
        The ``or_assist.pin_deviation/1`` JSON to write.
    overlay_path : path-like, optional
        A PNG with the overlay (two shots side by side).
    polarity : {'auto', 'bone-dark', 'bone-bright'}
    thresholds : CueThresholds, optional
    allow_ct_mismatch : bool
        Accept a CT whose voxel hash differs from the plan's (with a warning).
    dewarp : Dewarp, optional
        An image intensifier's (``register --dewarp``): video shots are dewarped first, as
        they were registered (DICOM shots are not).

    Returns
    -------
    PinDeviationFiles
        The document written, its path and the overlay's.

    Raises
    ------
    InputError
        Unknown implant, unreadable files, a CT that is not the plan's, not one or two
        shots, or a planned axis outside a shot's field of view.
    """
    from or_assist.core import jsonio
    from or_assist.core.geometry import CArmGeometry, load_geometry
    from or_assist.core.plan import load_plan, load_plan_ct
    from or_assist.guidance.cues import CueThresholds, cue_3d
    from or_assist.guidance.triangulate import (
        TriangulationRefused,
        ViewUncertainty,
        two_view_deviation,
    )
    from or_assist.video.shot_files import read_shot_header, read_shot_image

    shots = list(shots)
    if not 1 <= len(shots) <= 2 or not all(isinstance(s, (tuple, list)) and len(s) == 2 for s in shots):
        raise InputError(f"give one or two shots as (image, pose) pairs, got {len(shots)}", "--shot")
    thresholds = thresholds or CueThresholds()
    plan = load_plan(plan_path)
    implant = plan.implant(implant_id)
    geometry = geometry_path if isinstance(geometry_path, CArmGeometry) else load_geometry(geometry_path)
    _, ct_warnings = load_plan_ct(plan, ct_path=ct_path, allow_ct_mismatch=allow_ct_mismatch)
    entries, states, uncs = [], [], []
    for image_path, pose_path in shots:
        frame = read_shot_image(image_path)
        if dewarp is not None and read_shot_header(image_path) is None:
            frame = dewarp.apply(frame, str(image_path))
        pose, registered, reason = read_pose_or_registration(pose_path)
        entry, state = _one_shot(frame, pose, registered, reason, geometry, implant, plan, thresholds, polarity,
                                 image_path)
        entry["pose"] = str(pose_path)
        entries.append(entry)
        states.append(state)
        mm, deg = REGISTERED_POSE_SIGMA if registered else (0.0, 0.0)
        uncs.append(ViewUncertainty(pose_mm=mm, pose_deg=deg))
    doc = {"schema": PIN_DEVIATION_SCHEMA, "plan": str(plan_path), "implant": implant.id, "shots": entries,
           "deviation_3d": None, "deviation_3d_refused": None, "warnings": list(ct_warnings)}
    c3 = None
    if len(shots) == 2:
        missing = [i + 1 for i, s in enumerate(states) if s["detection"] is None]
        if missing:
            doc["deviation_3d_refused"] = f"no registered pin in shot {', '.join(map(str, missing))}"
        else:
            try:
                d3 = two_view_deviation(implant, [s["detection"] for s in states], [s["pose"] for s in states],
                                        [s["pre"].geometry for s in states], uncs)
                c3 = cue_3d(d3, implant, plan.landmarks, thresholds)
                doc["deviation_3d"] = {**d3.to_dict(), "cue": c3.to_dict()}
            except TriangulationRefused as exc:
                doc["deviation_3d_refused"] = str(exc)
    out = jsonio.write_json(out_path, doc)
    overlay = None
    if overlay_path is not None:
        import cv2

        imgs = [_overlay_image(s, plan, implant.id, c3 if i == len(states) - 1 else None) for i, s in enumerate(states)]
        h = min(i.shape[0] for i in imgs)
        imgs = [cv2.resize(i, (int(round(i.shape[1] * h / i.shape[0])), h)) if i.shape[0] != h else i for i in imgs]
        from or_assist.core.outputs import write_image

        overlay = write_image(overlay_path, np.hstack(imgs), what="the overlay image")
    return PinDeviationFiles(doc=doc, out=out, overlay=overlay)

