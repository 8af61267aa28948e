"""The geometry and the dewarp of a bead-phantom calibration refined together.

Fitting the dewarp to the residuals of a calibration that ignored it leaves the
principal point off by 5-10 px under a strong S-distortion: the pinhole fit has already
bent the principal point and the plate's tilt to absorb part of the distortion, and
alternating the two fits converges to that biased point. Here one least-squares problem
(:func:`scipy.optimize.least_squares`) holds the focal lengths, the principal point,
every image's phantom pose and the dewarp's coefficients, with the residual ``dewarp(project(bead)) - seen`` over all
beads of all used images. There is no lens model (``k1, k2, p1, p2``): the field holds
all the distortion, as the field's odd terms would otherwise trade with it (a radial
distortion is a cubic displacement), the two growing large and opposite.

A smooth field can mimic a tilted plate (a keystone is a quadratic displacement), so
the images with the phantom **lying on the detector cover** are held flat: their plate
normal is the central ray (the cover is the detector plane, as the SID measurement
already assumes), a penalty of 1000 px per radian. The mount angle, when given, holds
their in-plane angle the same way. Then the two planes' parallax fixes the principal
point (the field is the same for both planes and has no shift term).
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
from scipy.optimize import least_squares

from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose
from or_assist.errors import InputError

__all__ = ["refine_jointly"]

_PENALTY_PX_PER_RAD = 1000.0


def refine_jointly(result, dewarp, phantom, mount_angle_deg: float | None):
    """``(CalibrationResult, Dewarp)`` refined together (module doc).

    Parameters
    ----------
    result : CalibrationResult
        A calibration without a lens model (``distortion="none"``) whose ``image_px`` are
        the centres dewarped by ``dewarp`` (``bead_correction=dewarp.undo``).
    dewarp : Dewarp
        The dewarp that calibration used; its degree is kept.
    phantom : BeadPhantom
        For the plate-to-detector distance (the SID).
    mount_angle_deg : float or None
        The phantom's known in-plane angle on the cover (:mod:`or_assist.calibration.dewarp`).

    Returns
    -------
    (CalibrationResult, Dewarp)

    Raises
    ------
    InputError
        ``result`` has a lens model.
    """
    from or_assist.calibration.dewarp import Dewarp, _cross_validated_rms, _predict, _terms, in_plane_angle_rad

    g = result.geometry
    if g.distortion is not None:
        raise InputError("must be calibrated without a lens model (distortion='none'): the dewarp holds it",
                         "result")
    ims = [im for im in result.images if im.status == "ok" and im.pose is not None]
    seen = [np.asarray(im.image_px, float) + dewarp.displacement_px(im.image_px) for im in ims]
    obj = [np.asarray(im.phantom_mm, float) for im in ims]
    n_t, deg, scale = len(_terms(dewarp.degree, 0)), dewarp.degree, dewarp.scale_px
    poses = [np.r_[cv2.Rodrigues(im.pose.matrix[:3, :3])[0].ravel(), im.pose.matrix[:3, 3]] for im in ims]
    x0 = np.r_[g.sid_mm / g.pixel_spacing_mm[0], g.sid_mm / g.pixel_spacing_mm[1], g.principal_point_px,
               np.concatenate(poses), dewarp.coefficients_u, dewarp.coefficients_v]
    mount = None if mount_angle_deg is None else math.radians(mount_angle_deg)

    def unpack(x):
        k = 4 + 6 * len(ims)
        return x[0], x[1], x[2], x[3], x[4:k].reshape(-1, 6), x[k:k + n_t], x[k + n_t:k + 2 * n_t]

    def pinhole(x):
        fx, fy, u0, v0, pose, _, _ = unpack(x)
        kmat = np.array([[fx, 0, u0], [0, fy, v0], [0, 0, 1]], float)
        return [cv2.projectPoints(o, pose[j, :3], pose[j, 3:], kmat, None)[0].reshape(-1, 2)
                for j, o in enumerate(obj)]

    def residuals(x, penalties=True):
        fx, fy, u0, v0, pose, cu, cv = unpack(x)
        out = []
        for j, (p, s) in enumerate(zip(pinhole(x), seen)):
            out.append((p + _predict((p - (u0, v0)) / scale, (cu, cv), deg) - s).T.ravel())
            if penalties and ims[j].on_detector:
                r = cv2.Rodrigues(pose[j, :3])[0]
                pen = [r[0, 2], r[1, 2]]
                if mount is not None:
                    d = in_plane_angle_rad(r) - mount
                    pen.append(math.atan2(math.sin(d), math.cos(d)))
                out.append(_PENALTY_PX_PER_RAD * np.asarray(pen))
        return np.concatenate(out)

    fit = least_squares(residuals, x0, method="lm", x_scale="jac")
    fx, fy, u0, v0, pose, cu, cv = unpack(fit.x)
    new_ims, plate = list(result.images), []
    for j, im in enumerate(ims):
        r = cv2.Rodrigues(pose[j, :3])[0]
        dist_mm = abs(float(r[:, 2] @ pose[j, 3:]))
        if im.on_detector:
            plate.append(dist_mm)
        new_ims[result.images.index(im)] = dataclasses.replace(
            im, pose=Pose.from_rotation_translation(r, pose[j, 3:]), plate_distance_mm=dist_mm)
    sid = float(np.mean(plate)) + phantom.plate_to_detector_mm if plate else g.sid_mm
    geom = CArmGeometry(g.image_size_px, sid, (sid / fx, sid / fy), (float(u0), float(v0)),
                        g.source_to_isocenter_mm, None)
    n = sum(len(o) for o in obj)
    ideal = np.vstack(pinhole(fit.x))
    xy = (ideal - (u0, v0)) / scale
    disp = _predict(xy, (cu, cv), deg)
    # the field cross-validated over the beads with the refined geometry and poses held
    check = _cross_validated_rms(xy, np.vstack(seen) - ideal, deg)
    new_dw = Dewarp(dewarp.image_size_px, (float(u0), float(v0)), scale,
                    float(np.hypot(*(ideal - (u0, v0)).T).max()), deg, cu, cv, dewarp.mount_angle_deg, n,
                    float(np.sqrt(np.sum(residuals(fit.x, penalties=False) ** 2) / max(n, 1))), check,
                    float(np.hypot(*disp.T).max()))
    new_res = dataclasses.replace(result, geometry=geom, sid_mm=sid, pixel_spacing_mm=geom.pixel_spacing_mm,
                                  principal_point_px=geom.principal_point_px, images=tuple(new_ims))
    return new_res, new_dw
