"""C-arm calibration from images of a bead phantom (``or-assist calibrate``).

From one or more video frames of a bead phantom (:mod:`or_assist.calibration.phantom`)
this estimates the C-arm's geometry in **video pixels** (``or_assist.geometry/1``): SID,
pixel spacing (mm of detector per video pixel), principal point and, when it matters,
the distortion (OpenCV ``[k1, k2, p1, p2, k3]`` on normalised coordinates, applied
last, as in ``CONVENTIONS.md``), and reports the reprojection error.

Pipeline: beads are found (:func:`~or_assist.calibration.detect.detect_beads`) and
identified (:func:`~or_assist.calibration.match.identify_beads`) per image; one
``cv2.calibrateCamera`` over all images then fits the intrinsics, the distortion and
each image's phantom pose, leaving out beads touched by another bead's shadow (blobs
elongated by more than 12 %, and beads whose fitted shadows come within 1.5 px of
another's) and outliers beyond 5 robust sigmas (at least 0.25 px), in rounds.

What the images determine:

* A **two-plane** phantom lying on the detector cover: one image gives everything.
  The two planes' different magnifications give the depth of the phantom, hence the
  focal length ``f = SID / px``; where the planes' images coincide gives the principal
  point.
* A **single-plane** phantom needs several images: plate tilts (20-40 degrees, about
  different axes) determine the focal length and principal point, and one image with
  the plate lying on the detector cover gives the depth.

Then ``SID = (source-to-plate distance of the images lying on the cover) +
plate_to_detector_mm`` (an image counts as lying on the cover when the plate is within
3 degrees of perpendicular to the central ray), and ``px = SID / fx``, ``py = SID / fy``.
The source-to-isocentre distance is not observable and comes from the C-arm's profile.

Video ROI: the geometry is expressed in the pixels of the image that is calibrated, so
any scaling or offset by the frame grabber is simply part of it (the pixel spacing is
mm of detector per video pixel, the principal point is where the central ray meets the
video frame). When only a part of the frame will be used (``roi = (x, y, w, h)``), the
frames are cropped first and the geometry is that of the crop.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose
from or_assist.core.validate import check_choice, check_positive
from or_assist.core.vocabulary import DISTORTION_MODELS
from or_assist.calibration.result import CalibrationResult, ImageCalibration
from or_assist.errors import InputError
from or_assist.calibration.detect import as_grey_image, detect_beads
from or_assist.calibration.match import identify_beads
from or_assist.calibration.phantom import BeadPhantom

__all__ = ["DISTORTION_MODELS", "calibrate", "parse_roi"]

#: ``auto`` takes the simplest of none, radial (k1, k2) and full (k1, k2, p1, p2) that
#: the full model does not beat significantly (F-test on the squared residuals).
_FLAGS = {"none": cv2.CALIB_FIX_K1 | cv2.CALIB_FIX_K2 | cv2.CALIB_FIX_K3 | cv2.CALIB_ZERO_TANGENT_DIST,
          "radial": cv2.CALIB_ZERO_TANGENT_DIST | cv2.CALIB_FIX_K3, "full": cv2.CALIB_FIX_K3}
_ON_DETECTOR_DEG = 3.0
_MAX_REL_FOCAL_STD = 0.005
_CROWD_MARGIN_PX = 1.5
_MAX_ELONGATION = 1.12
_OUTLIER_SIGMAS = 5.0
_OUTLIER_FLOOR_PX = 0.25
_N_PARAMS = {"none": 4, "radial": 6, "full": 8}   # intrinsics + fitted distortion terms
_F_LIMIT = 10.0         # "auto": a richer model must pass an F-test at about p < 1e-4 ...
_MIN_SHIFT_PX = 0.2     # ... and distortion must move some bead by this much
_MIN_BEADS = 12
_WARN_RMS_PX = 0.3
_WARN_MAX_PX = 1.0
_MIN_TILT_DEG = 15.0
_MIN_TILT_AXES_DEG = 30.0


def parse_roi(roi, image_size_px: tuple[int, int] | None = None, name: str = "roi") -> tuple[int, int, int, int] | None:
    """``(x, y, w, h)`` from a sequence or an ``"x,y,w,h"`` string, checked against the image."""
    if roi is None:
        return None
    vals = roi.split(",") if isinstance(roi, str) else roi
    try:
        x, y, w, h = (int(str(v).strip()) if isinstance(v, str) else v for v in vals)
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (x, y, w, h)):
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"must be four integers x,y,w,h (pixels), got {roi!r}", name) from None
    if x < 0 or y < 0 or w < 32 or h < 32:
        raise InputError(f"needs x, y >= 0 and w, h >= 32, got {(x, y, w, h)}", name)
    if image_size_px is not None and (x + w > image_size_px[0] or y + h > image_size_px[1]):
        raise InputError(f"{(x, y, w, h)} reaches outside the {image_size_px[0]} x {image_size_px[1]} image",
                         name)
    return int(x), int(y), int(w), int(h)


def _dlt_camera(obj: np.ndarray, img: np.ndarray) -> np.ndarray:
    """Intrinsic matrix from a DLT fit of non-coplanar 3D-2D pairs (initial guess)."""
    def norm(p):
        c = p.mean(axis=0)
        s = math.sqrt(p.shape[1]) / np.sqrt(((p - c) ** 2).sum(axis=1)).mean()
        t = np.eye(p.shape[1] + 1)
        t[:-1, :-1] *= s
        t[:-1, -1] = -s * c
        return t
    tx, tu = norm(obj), norm(img)
    xh = np.column_stack([obj, np.ones(len(obj))]) @ tx.T
    uh = np.column_stack([img, np.ones(len(img))]) @ tu.T
    rows = []
    for X, (u, v, _) in zip(xh, uh):
        rows.append(np.concatenate([X, np.zeros(4), -u * X]))
        rows.append(np.concatenate([np.zeros(4), X, -v * X]))
    a = np.array(rows)
    p = np.linalg.eigh(a.T @ a)[1][:, 0].reshape(3, 4)           # least-squares null vector
    p = np.linalg.inv(tu) @ p @ tx
    k = cv2.decomposeProjectionMatrix(p)[0]
    k = k / k[2, 2]
    return np.array([[abs(k[0, 0]), 0, k[0, 2]], [0, abs(k[1, 1]), k[1, 2]], [0, 0, 1.0]])


def _fit(obj, img, size, k0, model):
    flags = _FLAGS[model] | (cv2.CALIB_USE_INTRINSIC_GUESS if k0 is not None else 0)
    crit = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 200, 1e-12)
    out = cv2.calibrateCameraExtended([o.astype(np.float32) for o in obj], [i.astype(np.float32) for i in img],
                                      size, None if k0 is None else k0.copy(), np.zeros(5), flags=flags,
                                      criteria=crit)
    _, k, dist, rvecs, tvecs, std_in = out[:6]
    res = [cv2.projectPoints(o, r, t, k, dist)[0].reshape(-1, 2) - i for o, i, r, t in zip(obj, img, rvecs, tvecs)]
    return k, dist.ravel()[:5], rvecs, tvecs, std_in.ravel(), res


def _rms(residuals) -> float:
    return math.sqrt(float(np.mean(np.concatenate([(r ** 2).sum(axis=1) for r in residuals]))))


def _max_shift(points, k, dist) -> float:
    """Largest distance (px) between distorted image points and their undistorted places."""
    pts = np.concatenate(points).reshape(-1, 1, 2)
    und = cv2.undistortPoints(pts, k, dist, P=k).reshape(-1, 2)
    return float(np.hypot(*(und - pts.reshape(-1, 2)).T).max())


def _crowded(obj_used, rvec, tvec, k, dist, phantom: BeadPhantom) -> np.ndarray:
    """(M,) bool: used beads whose shadow another bead's shadow touches in the image."""
    allp = phantom.positions_mm
    uv = cv2.projectPoints(allp, rvec, tvec, k, dist)[0].reshape(-1, 2)
    depth = (allp @ cv2.Rodrigues(rvec)[0].T + tvec.ravel())[:, 2]
    r_px = k[0, 0] * phantom.diameters_mm / 2.0 / depth
    idx = np.argmin(((obj_used[:, None, :] - allp[None, :, :]) ** 2).sum(axis=2), axis=1)
    d = np.hypot(*(uv[idx][:, None, :] - uv[None, :, :]).transpose(2, 0, 1))
    d[np.arange(len(idx)), idx] = np.inf
    return np.any(d < r_px[idx][:, None] + r_px[None, :] + _CROWD_MARGIN_PX, axis=1)


def _robust_fit(obj, img, size, k0, model, phantom):
    keep = [np.ones(len(o), bool) for o in obj]
    for round_ in range(6):
        o_k = [o[m] for o, m in zip(obj, keep)]
        i_k = [i[m] for i, m in zip(img, keep)]
        k, dist, rv, tv, std, res = _fit(o_k, i_k, size, k0, model)
        k0 = k
        err = np.concatenate([np.hypot(*r.T) for r in res])
        sigma = float(np.median(err)) / 1.1774
        limit = max(_OUTLIER_SIGMAS * sigma, _OUTLIER_FLOOR_PX)
        changed = False
        for j, (m, r) in enumerate(zip(keep, res)):
            rows = np.flatnonzero(m)
            bad = np.hypot(*r.T) > limit
            if round_ == 0:
                bad |= _crowded(obj[j][rows], rv[j], tv[j], k, dist, phantom)
            if bad.any() and (~bad).sum() >= _MIN_BEADS:
                m[rows[bad]] = False
                changed = True
        if not changed:
            return keep, (k, dist, rv, tv, std, res)
    return keep, _fit([o[m] for o, m in zip(obj, keep)], [i[m] for i, m in zip(img, keep)], size, k0, model)


def _check_tilts(images: list[ImageCalibration]) -> None:
    """A single plane needs two tilted views about different axes (focal length, principal point)."""
    axes = []
    for im in images:
        n = im.pose.rotation[:, 2]
        if im.tilt_deg >= _MIN_TILT_DEG:
            axes.append(math.degrees(math.atan2(n[0], -n[1])) % 180.0)
    spread = max((min(abs(a - b), 180.0 - abs(a - b)) for a in axes for b in axes), default=0.0)
    if spread < _MIN_TILT_AXES_DEG:
        raise InputError(f"a single-plane phantom needs, besides an image lying on the detector cover, at least "
                         f"two images with the plate tilted by {_MIN_TILT_DEG:g}-40 degrees about axes at least "
                         f"{_MIN_TILT_AXES_DEG:g} degrees apart; got {len(axes)} tilted image(s)"
                         + (f" with axes {spread:.0f} degrees apart" if len(axes) > 1 else ""), "images")


def calibrate(images, phantom: BeadPhantom, *, source_to_isocenter_mm: float, roi=None,
              distortion: str = "auto", nominal_sid_mm: float = 1000.0,
              names: Sequence[str] | None = None, bead_correction=None,
              max_focal_rel_std: float = _MAX_REL_FOCAL_STD) -> CalibrationResult:
    """Calibrate a C-arm and its video from images of a bead phantom (module doc).

    Parameters
    ----------
    images : (H, W) array or sequence of them
        Video frames of the phantom, all the same size, beads dark (metal dark, as
        ``CONVENTIONS.md``; invert a bone-white video first).
    phantom : BeadPhantom
    source_to_isocenter_mm : float
        Nominal (from the C-arm's profile); not observable from the images.
    roi : (x, y, w, h) or "x,y,w,h", optional
        Crop every frame to this rectangle first; the geometry is then the crop's.
    distortion : {"auto", "none", "radial", "full"}
        Distortion model: none, radial (k1, k2) or full (k1, k2, p1, p2; k3 stays 0,
        as the r^6 term is not determined within a C-arm's field of about |r| < 0.15);
        ``auto`` takes the simplest that the full model does not beat significantly
        (F-test, about p < 1e-4), and none when the fitted distortion moves no bead by
        0.2 px or more, so a flat panel gets none.
    nominal_sid_mm : float
        Rough SID, only to tell which bead size belongs to which plane.
    names : sequence of str, optional
        Names of the images for messages (e.g. file names).
    bead_correction : callable, optional
        ``(N, 2) px -> (N, 2) px`` applied to the detected bead centres before the fit
        (a dewarp's inverse: :func:`~or_assist.calibration.dewarp.calibrate_with_dewarp`);
        the result's ``image_px`` are then the corrected centres.
    max_focal_rel_std : float
        Refuse when the focal length's relative uncertainty is not below this (0.005).

    Returns
    -------
    CalibrationResult

    Raises
    ------
    InputError
        Bad arguments; no image with enough identified beads (each image's reason in the
        message); a focal length the images do not determine; no image with the phantom
        on the detector cover; or a SID not larger than ``source_to_isocenter_mm``.
    """
    if not isinstance(phantom, BeadPhantom):
        raise InputError(f"expected a BeadPhantom, got {type(phantom).__name__}", "phantom")
    check_choice(distortion, DISTORTION_MODELS, "distortion")
    for nm, val in (("source_to_isocenter_mm", source_to_isocenter_mm), ("nominal_sid_mm", nominal_sid_mm)):
        check_positive(val, nm, "mm")
    if isinstance(images, np.ndarray):
        images = [images]
    if not isinstance(images, (list, tuple)) or not images:
        raise InputError("must be an image array or a non-empty list of them", "images")
    names = [f"image {k}" for k in range(len(images))] if names is None else [str(n) for n in names]
    if len(names) != len(images):
        raise InputError(f"must name each of the {len(images)} images, got {len(names)} names", "names")
    grey = [as_grey_image(im, nm) for im, nm in zip(images, names)]
    if len({g.shape for g in grey}) > 1:
        raise InputError(f"must all have the same size, got {sorted({g.shape[::-1] for g in grey})}", "images")
    roi = parse_roi(roi, (grey[0].shape[1], grey[0].shape[0]))
    if roi is not None:
        x, y, w, h = roi
        grey = [g[y:y + h, x:x + w] for g in grey]
    size = (grey[0].shape[1], grey[0].shape[0])
    depth0 = nominal_sid_mm - phantom.plate_to_detector_mm

    states: list[ImageCalibration] = []
    obj, img, used, boxes = [], [], [], []
    for g, nm in zip(grey, names):
        try:
            det = detect_beads(g, min_beads=_MIN_BEADS, name=nm)
        except InputError as exc:
            msg = str(exc)
            states.append(ImageCalibration(nm, msg[len(nm) + 2:] if msg.startswith(nm + ": ") else msg))
            continue
        matches = identify_beads(det, phantom, depth0)
        good = [m for m in matches if m.ok]
        n_id = sum(len(m.detection_index) for m in good)
        if len(good) < len(matches) or n_id < _MIN_BEADS:
            why = "; ".join(m.reason for m in matches if not m.ok) or f"only {n_id} beads identified"
            states.append(ImageCalibration(nm, why, len(det), n_id))
            continue
        o = np.concatenate([phantom.planes[m.plane].cell_positions_mm(m.cells) for m in good])
        rows = np.concatenate([m.detection_index for m in good])
        is_round = det.elongation[rows] <= _MAX_ELONGATION     # a touching shadow pulls the centroid
        o, i = o[is_round], det.centres_px[rows[is_round]]
        if bead_correction is not None:
            i = np.asarray(bead_correction(i), dtype=np.float64)
        if len(o) < _MIN_BEADS:
            states.append(ImageCalibration(nm, f"only {len(o)} of the {n_id} identified beads are round "
                                               "(not touched by another bead's shadow)", len(det), n_id))
            continue
        states.append(ImageCalibration(nm, "ok", len(det), n_id))
        used.append(len(states) - 1)
        obj.append(o)
        img.append(i)
        boxes.append(det.field_box_px)
    if not used:
        if len(states) == 1:
            raise InputError(states[0].status, states[0].name)
        raise InputError("no image could be used: " + "; ".join(f"{s.name}: {s.status}" for s in states),
                         "images")

    k0 = None if phantom.is_planar else _dlt_camera(np.concatenate(obj[:1]), np.concatenate(img[:1]))
    model = "full" if distortion == "auto" else distortion
    keep, (k, dist, rv, tv, std, res) = _robust_fit(obj, img, size, k0, model, phantom)
    if distortion == "auto":
        o_k = [o[m] for o, m in zip(obj, keep)]
        i_k = [i[m] for i, m in zip(img, keep)]
        ss_full, dof = _rms(res) ** 2, 2 * sum(len(o) for o in o_k) - _N_PARAMS["full"] - 6 * len(o_k)
        for simpler in ("none", "radial"):
            fit = _fit(o_k, i_k, size, k, simpler)
            extra = _N_PARAMS["full"] - _N_PARAMS[simpler]
            f_stat = (_rms(fit[5]) ** 2 - ss_full) / extra / max(ss_full / dof, 1e-300)
            negligible = simpler == "none" and _max_shift(i_k, k, dist) < _MIN_SHIFT_PX
            if f_stat < _F_LIMIT or negligible:
                model = simpler
                k, dist, rv, tv, std, res = fit
                break
    fx, fy = float(k[0, 0]), float(k[1, 1])
    rel_std = max(std[0] / fx, std[1] / fy) if np.all(np.isfinite(std[:2])) else math.inf
    if not rel_std < max_focal_rel_std:
        raise InputError(f"the images do not determine the focal length (relative uncertainty {rel_std:.1%}): "
                         "use the two-plane phantom, or add images with the plate tilted by 20-40 degrees",
                         "images")

    final = []
    for j, s in enumerate(used):
        rot = cv2.Rodrigues(rv[j])[0]
        t = tv[j].ravel()
        normal = rot[:, 2]
        tilt = math.degrees(math.acos(min(1.0, abs(float(normal[2])))))
        err = np.hypot(*res[j].T)
        states[s] = ImageCalibration(
            states[s].name, "ok", states[s].n_detected, states[s].n_identified, int(keep[j].sum()),
            float(np.sqrt(np.mean(err ** 2))), float(err.max()), Pose.from_rotation_translation(rot, t),
            tilt, abs(float(normal @ t)), tilt <= _ON_DETECTOR_DEG, img[j][keep[j]], obj[j][keep[j]], res[j])
        final.append(states[s])
    if phantom.is_planar:
        _check_tilts(final)
    on_det = [s for s in final if s.on_detector]
    if not on_det:
        raise InputError("no image shows the phantom lying on the detector cover (smallest plate tilt "
                         f"{min(s.tilt_deg for s in final):.1f} deg, at most {_ON_DETECTOR_DEG:g} deg "
                         "allowed), so the SID cannot be measured", "images")
    sid = float(np.mean([s.plate_distance_mm for s in on_det])) + phantom.plate_to_detector_mm
    if sid <= source_to_isocenter_mm:
        raise InputError(f"must be smaller than the measured SID ({sid:.1f} mm), got {source_to_isocenter_mm:g}",
                         "source_to_isocenter_mm")
    coeffs = None if model == "none" else np.asarray(dist, dtype=np.float64)
    geom = CArmGeometry(size, sid, (sid / fx, sid / fy), (float(k[0, 2]), float(k[1, 2])),
                        float(source_to_isocenter_mm), coeffs)
    all_err = np.concatenate([np.hypot(*r.T) for r in res])
    shift = 0.0 if coeffs is None else _max_shift([s.image_px for s in final], k, dist)
    rms, worst = float(np.sqrt(np.mean(all_err ** 2))), float(all_err.max())
    warnings = []
    if rms > _WARN_RMS_PX or worst > _WARN_MAX_PX:
        warnings.append(f"reprojection error rms {rms:.2f} px / max {worst:.2f} px exceeds {_WARN_RMS_PX:g} / "
                        f"{_WARN_MAX_PX:g} px: are all images from this C-arm and video mode, and is the "
                        "phantom file the phantom imaged?")
    if any(s.status != "ok" for s in states):
        warnings.append(f"{sum(s.status != 'ok' for s in states)} of {len(states)} images not used")
    return CalibrationResult(
        geometry=geom, reprojection_error_px=(rms, worst),
        sid_mm=sid, pixel_spacing_mm=geom.pixel_spacing_mm, principal_point_px=geom.principal_point_px,
        focal_std_px=(float(std[0]), float(std[1])), distortion_model=model, max_distortion_px=shift,
        n_beads=int(sum(len(s.image_px) for s in final)), images=tuple(states), roi=roi,
        field_box_px=boxes[0], warnings=tuple(warnings))
