"""Image-intensifier dewarping: the whole distortion, measured on a mounted bead grid.

An image intensifier bends its picture in ways OpenCV's lens model (``k1, k2, p1, p2``,
in ``or_assist.geometry/1``) does not describe: the **S-distortion** (the Earth's and the
room's magnetic field twisting the electron paths) turns content by an angle that varies
with the distance from the centre. Registration then fits no rigid pose everywhere and is
off by 1-3 mm over the sacrum although the overlay near the image centre looks right.

A :class:`Dewarp` is the intensifier's whole distortion (pincushion and S), measured:
from a calibration (:func:`~or_assist.calibration.solve.calibrate`, without a lens model)
of the bead phantom **lying on the detector cover**, each used bead's detected centroid
minus where the geometry puts it, fitted by a smooth polynomial displacement field
(monomials of total degree up to 2-6 in the video pixel coordinates about the principal
point; the degree is chosen by 5-fold cross-validation over the beads, and the
cross-validated rms is reported as the field's check error). The field has no constant
term and no stretch along u or v: those are exactly a principal point and a focal length,
which stay the geometry's, so the field is zero at the principal point.
:func:`calibrate_with_dewarp` alternates the two fits, then refines them together
(:mod:`or_assist.calibration.dewarp_joint`); ``docs/intensifier_dewarp.md`` says why each
step. Applied to every frame (:meth:`Dewarp.apply`), the field gives the image in which
the geometry holds; registration, pin detection and the overlay all work on that image.

The **mount angle**. A twist that is the same everywhere cannot be told from the phantom
lying turned on the cover, so a calibration that fits the phantom's pose freely absorbs
the S-distortion's mean turn (about ``4 A / (pi R)`` for an amplitude ``A`` px over a
screen of radius ``R`` px: 1-3 degrees) and the dewarped image stays turned by it, which
registration reports as a roll of the C-arm (a 1-2 mm error over the sacrum). A dewarping
grid is therefore clipped to the intensifier in a fixed orientation: give that angle
(``mount_angle_deg``: the phantom's +x axis measured from the image's +u axis towards +v)
and the twist is measured too. Without it the field is fitted with the phantom's own
fitted turn, and :attr:`Dewarp.mount_angle_deg` is None (said in the report).

Outside the beads' reach (beyond the largest bead radius from the principal point), the
displacement is held at its value on that radius rather than extrapolated.

File: ``or_assist.dewarp/1`` (JSON)::

    {"schema": "or_assist.dewarp/1", "image_size": [w, h], "center_px": [cx, cy],
     "scale_px": s, "radius_px": r, "degree": n, "coefficients_u": [...], "coefficients_v": [...],
     "mount_angle_deg": a or null, "n_beads": m, "fit_rms_px": f, "check_rms_px": c,
     "max_shift_px": d}

The coefficients multiply the monomials ``x^i y^j`` with ``1 <= i + j <= n`` (``i``
outer, ``j`` inner), leaving out ``x`` for u and ``y`` for v, at ``x = (u - cx) / s``,
``y = (v - cy) / s`` (``center_px`` is the geometry's principal point), giving the
displacement (px) from where the geometry puts a point to where the frame shows it.

Examples
--------
>>> d = Dewarp.identity((640, 480))
>>> d.apply(np.zeros((480, 640), np.uint8)).shape
(480, 640)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from or_assist.core import jsonio
from or_assist.core.geometry import project
from or_assist.core.pose import Pose, rotation_about_axis
from or_assist.errors import InputError

__all__ = ["DEWARP_SCHEMA", "Dewarp", "fit_dewarp", "calibrate_with_dewarp", "in_plane_angle_rad", "load_dewarp",
           "save_dewarp"]

DEWARP_SCHEMA = "or_assist.dewarp/1"
_DEGREES = (2, 3, 4, 5, 6)
_FOLDS = 5
_MIN_BEADS = 40
_MAP_STEP_PX = 8
_ROUNDS = 2


def _terms(degree: int, axis: int) -> np.ndarray:
    """Exponents (i, j) of the monomials ``x^i y^j`` of the displacement along ``axis`` (0: u, 1: v).

    Total degree 1..``degree`` without the constant and without ``x`` in u and ``y`` in v:
    a shift of the image is a shift of the principal point and a stretch along u or v a
    change of focal length, exactly, so those belong to the geometry (the gauge).
    """
    drop = {(0, 0), (1, 0) if axis == 0 else (0, 1)}
    return np.array([(i, j) for i in range(degree + 1) for j in range(degree + 1 - i) if (i, j) not in drop], dtype=int)


def _design(xy: np.ndarray, degree: int, axis: int) -> np.ndarray:
    """(N, n_terms) monomial design matrix at normalised points (:func:`_terms`)."""
    ij = _terms(degree, axis)
    return xy[:, :1] ** ij[:, 0] * xy[:, 1:2] ** ij[:, 1]


@dataclass(frozen=True, eq=False)
class Dewarp:
    """A smooth displacement field of the video image (module doc).

    Attributes
    ----------
    image_size_px : (int, int)
        ``(width, height)`` of the frames it applies to (those of the geometry).
    center_px, scale_px : (float, float), float
        Normalisation of the pixel coordinates.
    radius_px : float
        The field is held constant beyond this distance from ``center_px``.
    degree : int
    coefficients_u, coefficients_v : (n_terms,) ndarray
        Displacement (px) along u and v.
    mount_angle_deg : float or None
        The phantom's known orientation, if one was given (then the field includes the
        twist); None: fitted freely.
    n_beads : int
    fit_rms_px, check_rms_px : float
        Residual of the beads after dewarping: in the fit, and cross-validated.
    max_shift_px : float
        The largest displacement at a bead.
    """

    image_size_px: tuple[int, int]
    center_px: tuple[float, float]
    scale_px: float
    radius_px: float
    degree: int
    coefficients_u: np.ndarray
    coefficients_v: np.ndarray
    mount_angle_deg: float | None = None
    n_beads: int = 0
    fit_rms_px: float = 0.0
    check_rms_px: float = 0.0
    max_shift_px: float = 0.0
    _maps: list = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def identity(cls, image_size_px) -> "Dewarp":
        """The dewarp that changes nothing (for frames of ``image_size_px``)."""
        w, h = (int(x) for x in image_size_px)
        n = len(_terms(2, 0))
        return cls((w, h), ((w - 1) / 2.0, (h - 1) / 2.0), max(w, h) / 2.0, math.hypot(w, h), 2,
                   np.zeros(n), np.zeros(n))

    def displacement_px(self, points_px) -> np.ndarray:
        """Displacement (N, 2) px at ideal points (N, 2): where the frame shows what the geometry puts there, minus it."""
        p = np.atleast_2d(np.asarray(points_px, dtype=float))
        c = np.asarray(self.center_px, dtype=float)
        d = p - c
        r = np.hypot(d[:, 0], d[:, 1])
        k = np.where(r > self.radius_px, self.radius_px / np.maximum(r, 1e-12), 1.0)
        return _predict(d * k[:, None] / self.scale_px, (self.coefficients_u, self.coefficients_v), self.degree)

    def undo(self, seen_px, iterations: int = 4) -> np.ndarray:
        """Where the geometry puts points (N, 2) that the frame shows at ``seen_px`` (fixed-point inverse)."""
        seen = np.atleast_2d(np.asarray(seen_px, dtype=float))
        ideal = seen.copy()
        for _ in range(iterations):
            ideal = seen - self.displacement_px(ideal)
        return ideal

    def maps(self) -> tuple[np.ndarray, np.ndarray]:
        """``cv2.remap`` maps (float32, (h, w)): the dewarped pixel (u, v) samples the frame there.

        The field is evaluated on a grid every 8 px, at the pixel positions that
        ``cv2.resize`` by 8 puts its source samples at, and resized (bilinear): the field is
        smooth (a few degrees of polynomial over hundreds of pixels): within 0.02 px of the
        field where the beads measured it, 0.2 px at the edge of their reach (the kink
        where the field is then held constant). Cached.
        """
        if not self._maps:
            w, h = self.image_size_px
            nu, nv = -(-w // _MAP_STEP_PX), -(-h // _MAP_STEP_PX)
            us = (np.arange(nu) + 0.5) * _MAP_STEP_PX - 0.5
            vs = (np.arange(nv) + 0.5) * _MAP_STEP_PX - 0.5
            gu, gv = np.meshgrid(us, vs)
            d = self.displacement_px(np.stack([gu.ravel(), gv.ravel()], axis=1))
            size = (nu * _MAP_STEP_PX, nv * _MAP_STEP_PX)
            big = [cv2.resize(d[:, k].reshape(gu.shape).astype(np.float32), size,
                              interpolation=cv2.INTER_LINEAR)[:h, :w] for k in (0, 1)]
            pu, pv = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._maps.extend([pu + big[0], pv + big[1]])
        return self._maps[0], self._maps[1]

    def apply(self, frame: np.ndarray, name: str = "frame") -> np.ndarray:
        """The dewarped frame (same size and dtype; outside the frame black).

        Raises
        ------
        InputError
            The frame's size is not the one the dewarp was calibrated for (``name``).
        """
        img = np.asarray(frame)
        if img.ndim < 2 or (img.shape[1], img.shape[0]) != tuple(self.image_size_px):
            raise InputError(f"is {'x'.join(map(str, img.shape[1::-1]))} px but the dewarp was calibrated for "
                             f"{self.image_size_px[0]}x{self.image_size_px[1]} px frames", name)
        mu, mv = self.maps()
        return cv2.remap(img, mu, mv, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def to_dict(self) -> dict:
        """The ``or_assist.dewarp/1`` object."""
        return {"schema": DEWARP_SCHEMA, "image_size": list(self.image_size_px), "center_px": list(self.center_px),
                "scale_px": self.scale_px, "radius_px": self.radius_px, "degree": self.degree,
                "coefficients_u": [float(x) for x in self.coefficients_u],
                "coefficients_v": [float(x) for x in self.coefficients_v],
                "mount_angle_deg": self.mount_angle_deg, "n_beads": self.n_beads, "fit_rms_px": self.fit_rms_px,
                "check_rms_px": self.check_rms_px, "max_shift_px": self.max_shift_px}

    @classmethod
    def from_dict(cls, d: dict, source: str = "dewarp") -> "Dewarp":
        """Read an ``or_assist.dewarp/1`` object; InputError naming ``source`` and the field."""
        if not isinstance(d, dict) or d.get("schema") != DEWARP_SCHEMA:
            got = d.get("schema") if isinstance(d, dict) else type(d).__name__
            raise InputError(f"expected schema {DEWARP_SCHEMA!r}, got {got!r}", source)

        def num(key, lo=-math.inf, hi=math.inf):
            v = d.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= float(v) <= hi:
                raise InputError(f"field {key!r} must be a number in [{lo}, {hi}], got {v!r}", source)
            return float(v)

        def pair(key):
            v = d.get(key)
            if not isinstance(v, list) or len(v) != 2 or not all(isinstance(x, (int, float)) for x in v):
                raise InputError(f"field {key!r} must be a list of 2 numbers, got {v!r}", source)
            return tuple(float(x) for x in v)

        size = pair("image_size")
        if min(size) < 1 or any(x != int(x) for x in size):
            raise InputError(f"field 'image_size' must be two positive whole numbers, got {d.get('image_size')!r}", source)
        degree = int(num("degree", 0, 10))
        n = len(_terms(degree, 0))
        coef = []
        for key in ("coefficients_u", "coefficients_v"):
            v = d.get(key)
            if not isinstance(v, list) or len(v) != n or not all(isinstance(x, (int, float)) for x in v):
                raise InputError(f"field {key!r} must be a list of {n} numbers (degree {degree})", source)
            coef.append(np.asarray(v, dtype=float))
        mount = d.get("mount_angle_deg")
        if mount is not None:
            mount = num("mount_angle_deg", -360.0, 360.0)
        return cls((int(size[0]), int(size[1])), pair("center_px"), num("scale_px", 1e-6), num("radius_px", 0.0),
                   degree, coef[0], coef[1], mount, int(num("n_beads", 0)), num("fit_rms_px", 0.0),
                   num("check_rms_px", 0.0), num("max_shift_px", 0.0))

    def describe(self) -> str:
        """One line for reports."""
        twist = ("the twist included (mount angle %g deg)" % self.mount_angle_deg if self.mount_angle_deg is not None
                 else "the twist NOT measured (no mount angle given)")
        return (f"dewarp: degree {self.degree} over {self.n_beads} beads, moves them by up to {self.max_shift_px:.2f} px; "
                f"residual {self.fit_rms_px:.2f} px rms (cross-validated {self.check_rms_px:.2f} px); {twist}")


def in_plane_angle_rad(rotation) -> float:
    """The in-plane angle (rad) of a rotation's x axis in the source frame: from the image's
    +u axis towards +v (a phantom pose's ``T_source_from_phantom[:3, :3]``, module doc)."""
    r = np.asarray(rotation, dtype=float)
    return math.atan2(r[1, 0], r[0, 0])


def _turned(pose: Pose, angle_rad: float) -> Pose:
    """``pose`` turned by ``angle_rad`` about the source's z axis (the central ray)."""
    rz = np.eye(4)
    rz[:3, :3] = rotation_about_axis((0.0, 0.0, 1.0), angle_rad)
    return Pose(rz @ pose.matrix)


def _fit(xy: np.ndarray, disp: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
    return tuple(np.linalg.lstsq(_design(xy, degree, k), disp[:, k], rcond=None)[0] for k in (0, 1))


def _predict(xy: np.ndarray, coef, degree: int) -> np.ndarray:
    return np.stack([_design(xy, degree, k) @ coef[k] for k in (0, 1)], axis=1)


def _cross_validated_rms(xy: np.ndarray, disp: np.ndarray, degree: int) -> float:
    fold = np.arange(len(xy)) % _FOLDS
    err = np.empty_like(disp)
    for f in range(_FOLDS):
        coef = _fit(xy[fold != f], disp[fold != f], degree)
        err[fold == f] = disp[fold == f] - _predict(xy[fold == f], coef, degree)
    return float(np.sqrt(np.mean(np.sum(err ** 2, axis=1))))


def fit_dewarp(result, *, mount_angle_deg: float | None = None, degree: int | None = None,
               applied: Dewarp | None = None) -> Dewarp:
    """Fit the dewarp of a calibration's images of the phantom lying on the detector cover (module doc).

    Parameters
    ----------
    result : CalibrationResult
        From :func:`~or_assist.calibration.solve.calibrate`.
    mount_angle_deg : float, optional
        The phantom's known in-plane orientation (its +x axis from the image's +u axis
        towards +v, degrees); None fits it freely (the twist is then not measured).
    degree : int, optional
        Polynomial degree (2-6); default chosen by 5-fold cross-validation.
    applied : Dewarp, optional
        The dewarp whose inverse the calibration applied to its bead centres
        (``bead_correction``); the fit is then to the centres as the frames showed them.

    Returns
    -------
    Dewarp

    Raises
    ------
    InputError
        No image lying on the cover, fewer than 40 beads, or a bad argument (named).
    """
    if degree is not None and degree not in _DEGREES:
        raise InputError(f"must be one of {_DEGREES}, got {degree!r}", "degree")
    if mount_angle_deg is not None and not (isinstance(mount_angle_deg, (int, float))
                                            and math.isfinite(mount_angle_deg)):
        raise InputError(f"must be a finite number of degrees, got {mount_angle_deg!r}", "mount_angle_deg")
    g = result.geometry
    ideal, seen = [], []
    for im in result.images:
        if im.status != "ok" or not im.on_detector or im.pose is None:
            continue
        pose = im.pose
        if mount_angle_deg is not None:
            pose = _turned(pose, math.radians(mount_angle_deg) - in_plane_angle_rad(pose.matrix[:3, :3]))
        ideal.append(project(im.phantom_mm, pose, g))
        px = np.asarray(im.image_px, dtype=float)
        seen.append(px if applied is None else px + applied.displacement_px(px))
    if not ideal:
        raise InputError("no image of the phantom lying on the detector cover was used: the dewarp needs one",
                         "images")
    ideal, seen = np.vstack(ideal), np.vstack(seen)
    if len(ideal) < _MIN_BEADS:
        raise InputError(f"only {len(ideal)} beads of the phantom on the cover were used; the dewarp needs "
                         f"at least {_MIN_BEADS}", "images")
    w, h = g.image_size_px
    center = np.asarray(g.principal_point_px, dtype=float)
    scale = max(w, h) / 2.0
    rel = ideal - center
    radius = float(np.hypot(rel[:, 0], rel[:, 1]).max())
    xy = rel / scale
    disp = seen - ideal
    cands = _DEGREES if degree is None else (degree,)
    checks = {n: _cross_validated_rms(xy, disp, n) for n in cands if len(_terms(n, 0)) * 3 <= len(xy)}
    if not checks:
        raise InputError(f"{len(xy)} beads are too few for a degree-{degree} dewarp", "degree")
    best = min(checks, key=lambda n: (round(checks[n], 3), n))
    cu, cv = _fit(xy, disp, best)
    res = disp - _predict(xy, (cu, cv), best)
    return Dewarp((int(w), int(h)), (float(center[0]), float(center[1])), float(scale), radius, best, cu, cv,
                  None if mount_angle_deg is None else float(mount_angle_deg), len(xy),
                  float(np.sqrt(np.mean(np.sum(res ** 2, axis=1)))), checks[best],
                  float(np.hypot(disp[:, 0], disp[:, 1]).max()))


def calibrate_with_dewarp(images, phantom, *, source_to_isocenter_mm: float, mount_angle_deg: float | None = None,
                          degree: int | None = None, **calibrate_kwargs):
    """Calibrate the geometry and the dewarp together: ``(CalibrationResult, Dewarp)``.

    The dewarp holds **all** of the intensifier's distortion (pincushion and S): the
    geometry gets none (``distortion`` null; a ``distortion`` argument is not accepted),
    since a lens model beside the field would trade with its odd terms, the two growing
    large and opposite, and the lens model's extrapolation beyond the beads would then
    bend the frame's rim.

    Steps: a calibration without a lens model that tolerates up to 5 % focal uncertainty
    (the distortion's residuals make the plain one refuse), a dewarp fitted to its
    residuals, then, twice, the calibration again with the bead centres dewarped (its
    usual checks) and the dewarp fitted anew to the frames' centres; finally both refined
    together (:func:`~or_assist.calibration.dewarp_joint.refine_jointly`, which fixes the
    principal point). Parameters as :func:`~or_assist.calibration.solve.calibrate` and
    :func:`fit_dewarp`.

    Raises
    ------
    InputError
        As either of those.
    """
    from or_assist.calibration.dewarp_joint import refine_jointly
    from or_assist.calibration.solve import calibrate

    if "distortion" in calibrate_kwargs:
        raise InputError("is not used with a dewarp (the dewarp holds all the distortion); leave it out",
                         "distortion")
    kw = dict(calibrate_kwargs, source_to_isocenter_mm=source_to_isocenter_mm, distortion="none")
    dewarp = fit_dewarp(calibrate(images, phantom, max_focal_rel_std=0.05, **kw), mount_angle_deg=mount_angle_deg,
                        degree=degree)
    for _ in range(_ROUNDS):
        result = calibrate(images, phantom, bead_correction=dewarp.undo, **kw)
        dewarp = fit_dewarp(result, mount_angle_deg=mount_angle_deg, degree=degree, applied=dewarp)
    result = calibrate(images, phantom, bead_correction=dewarp.undo, **kw)
    return refine_jointly(result, dewarp, phantom, mount_angle_deg)


def save_dewarp(path: str | os.PathLike, dewarp: Dewarp) -> None:
    """Write ``or_assist.dewarp/1``."""
    jsonio.write_json(path, dewarp.to_dict())


def load_dewarp(path: str | os.PathLike) -> Dewarp:
    """Read ``or_assist.dewarp/1``; InputError naming the file and the field."""
    return Dewarp.from_dict(jsonio.read_json(path), str(path))
