"""C-arm positions as poses: clinical angles and the named SIJF views.

Angles are anatomical, so they mean the same for a prone and a supine patient:

* ``orbital_deg``: rotation of the beam about the patient's cranio-caudal axis;
  positive moves the *detector* towards the patient's left (LAO for a supine patient
  with the tube under the table), 90 = a lateral with the detector on the left.
* ``tilt_deg``: angular tilt in the sagittal plane; positive moves the *detector*
  towards the patient's head (CRAN), negative towards the feet (CAUD).

At 0/0 the tube is under the table and the beam goes up through the patient: for a
prone patient that is anterior -> posterior, for a supine one posterior -> anterior.

Image orientation: the image is rolled so that the patient's head is up on the screen
(cranial = decreasing row v) whenever the beam is not along the cranio-caudal axis,
which is what surgeons expect for lateral, inlet, outlet and axis views. Left-right
mirroring of a monitor is a display flip handled by the video preprocessing, not a pose
(a pose never contains a reflection).

Named views (DOMAIN.md): *lateral* (true lateral of the sacrum), *inlet* (beam tilted
about 25 deg from AP towards caudal), *outlet* (about 42 deg towards cranial), *ap*, and
*axis* (down the implant axis, entry to apex). Tilts are configurable and can be
derived per patient from plan landmarks (:func:`derive_view_tilts_deg`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from or_assist.core.pose import Pose
from or_assist.core.validate import check_choice, check_finite, check_vector
from or_assist.core.vocabulary import PATIENT_POSITIONS, SIDES, VIEW_KINDS
from or_assist.errors import InputError

__all__ = [
    "DEFAULT_INLET_TILT_DEG",
    "DEFAULT_OUTLET_TILT_DEG",
    "VIEW_KINDS",
    "PATIENT_POSITIONS",
    "CArmAngles",
    "pose_from_beam",
    "pose_from_carm_angles",
    "carm_angles_from_pose",
    "beam_from_carm_angles",
    "sijf_view_pose",
    "derive_view_tilts_deg",
    "patient_axes",
]

DEFAULT_INLET_TILT_DEG = 25.0   # DOMAIN.md: about 25 deg (21-33) towards caudal
DEFAULT_OUTLET_TILT_DEG = 42.0  # DOMAIN.md: about 42 deg (30-50) towards cranial

_L = np.array([1.0, 0.0, 0.0])
_P = np.array([0.0, 1.0, 0.0])
_S = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class CArmAngles:
    """Clinical C-arm angles (see the module docstring for signs)."""

    orbital_deg: float
    tilt_deg: float

    def describe(self) -> str:
        """E.g. ``'LAO 10 deg, CAUD 25 deg'`` (detector side, as on the C-arm)."""
        o = f"{'LAO' if self.orbital_deg >= 0 else 'RAO'} {abs(self.orbital_deg):.0f} deg"
        t = f"{'CRAN' if self.tilt_deg >= 0 else 'CAUD'} {abs(self.tilt_deg):.0f} deg"
        return f"{o}, {t}"

    def radiographer_text(self, decimals: int = 0) -> str:
        """The angles as the radiographer sets them on the C-arm.

        E.g. ``'orbital RAO 90 deg, tilt CAUD 25 deg'``: the orbital (rainbow) rotation
        and the angular tilt, each by the side the *detector* goes to (module doc signs:
        LAO / CRAN positive). ``decimals`` digits after the point (0-2).
        """
        if decimals not in (0, 1, 2):
            raise InputError(f"must be 0, 1 or 2, got {decimals!r}", "decimals")
        o, t = round(self.orbital_deg, decimals), round(self.tilt_deg, decimals)
        o_side = "LAO" if o > 0 else "RAO" if o < 0 else ""
        t_side = "CRAN" if t > 0 else "CAUD" if t < 0 else ""
        fmt = f"{{:.{decimals}f}}"
        orbital = " ".join(x for x in ("orbital", o_side, fmt.format(abs(o)), "deg") if x)
        tilt = " ".join(x for x in ("tilt", t_side, fmt.format(abs(t)), "deg") if x)
        return f"{orbital}, {tilt}"


def patient_axes(landmarks: Iterable | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The patient's anatomical axes (left, posterior, superior) as unit LPS vectors.

    Without landmarks these are the CT's LPS axes. With plan landmarks that come in
    left/right pairs of the same kind (foramina, alar line points), the left axis is
    the mean right-to-left difference, so a patient lying rotated on the CT table still
    gets a *true* lateral; posterior and superior are re-orthogonalised around it.

    Parameters
    ----------
    landmarks : iterable of objects or dicts with ``kind``, ``side``, ``position_lps_mm``
    """
    left = _L.copy()
    if landmarks:
        pairs: dict[str, dict[str, np.ndarray]] = {}
        for lm in landmarks:
            kind, side, pos = _lm_fields(lm)
            if side in ("left", "right"):
                pairs.setdefault(kind, {})[side] = pos
        diffs = [p["left"] - p["right"] for p in pairs.values() if "left" in p and "right" in p]
        diffs = [d / np.linalg.norm(d) for d in diffs if np.linalg.norm(d) > 20.0]
        if diffs:
            cand = np.mean(diffs, axis=0)
            if np.linalg.norm(cand) > 0.5 and cand @ _L > 0.7:
                left = cand / np.linalg.norm(cand)
    sup = _S - (_S @ left) * left
    sup /= np.linalg.norm(sup)
    post = np.cross(sup, left)  # L x P = S  =>  P = S x L
    return left, post, sup


def _lm_fields(lm):
    if isinstance(lm, dict):
        return lm["kind"], lm.get("side", "midline"), np.asarray(lm["position_lps_mm"], float)
    return lm.kind, lm.side, np.asarray(lm.position_lps_mm, float)


def _check_position(patient_position: str) -> None:
    check_choice(patient_position, PATIENT_POSITIONS, "patient_position")


def beam_from_carm_angles(orbital_deg: float, tilt_deg: float, patient_position: str = "prone",
                          axes: tuple | None = None) -> np.ndarray:
    """Unit beam direction (source -> detector) in LPS for clinical angles."""
    _check_position(patient_position)
    o = math.radians(check_finite(orbital_deg, "orbital_deg"))
    t = math.radians(check_finite(tilt_deg, "tilt_deg"))
    left, post, sup = axes if axes is not None else patient_axes()
    up = post if patient_position == "prone" else -post  # the beam goes up through the table
    d = math.cos(t) * (math.cos(o) * up + math.sin(o) * left) + math.sin(t) * sup
    return d / np.linalg.norm(d)


def pose_from_beam(beam_lps: Sequence[float], isocenter_lps_mm: Sequence[float],
                   source_to_isocenter_mm: float, up_lps: Sequence[float] | None = None) -> Pose:
    """The pose whose central ray runs along ``beam_lps`` through the isocentre.

    Parameters
    ----------
    beam_lps : (3,) array_like
        Direction from source to detector (any length > 0).
    isocenter_lps_mm : (3,) array_like
        Point on the central ray at ``source_to_isocenter_mm`` from the source.
    source_to_isocenter_mm : float
    up_lps : (3,) array_like, optional
        Patient direction to show up on screen (default superior); if nearly parallel
        to the beam, anterior is used instead.

    Returns
    -------
    Pose
        ``T_source_from_patient``.
    """
    z = check_vector(beam_lps, 3, "beam_lps", nonzero=True)
    iso = check_vector(isocenter_lps_mm, 3, "isocenter_lps_mm", unit="LPS mm")
    s2i = check_finite(source_to_isocenter_mm, "source_to_isocenter_mm")
    if s2i <= 0:
        raise InputError(f"must be > 0, got {s2i}", "source_to_isocenter_mm")
    z = z / np.linalg.norm(z)
    up = _S if up_lps is None else np.asarray(up_lps, dtype=np.float64)
    up_perp = up - (up @ z) * z
    if np.linalg.norm(up_perp) < 0.2 * np.linalg.norm(up):
        up = -_P  # anterior up for beams along the body axis
        up_perp = up - (up @ z) * z
    y = -up_perp / np.linalg.norm(up_perp)  # rows go down, so "up" is -y
    x = np.cross(y, z)
    rot = np.stack([x, y, z])
    source = iso - s2i * z
    return Pose.from_rotation_translation(rot, -rot @ source)


def pose_from_carm_angles(orbital_deg: float, tilt_deg: float, isocenter_lps_mm: Sequence[float],
                          source_to_isocenter_mm: float, patient_position: str = "prone",
                          axes: tuple | None = None) -> Pose:
    """Pose of a C-arm at clinical angles around an isocentre.

    Parameters
    ----------
    orbital_deg, tilt_deg : float
        See the module docstring (detector towards patient's left / head is positive).
    isocenter_lps_mm : (3,) array_like
    source_to_isocenter_mm : float
    patient_position : {'prone', 'supine'}
    axes : tuple of three (3,) arrays, optional
        Patient anatomical axes from :func:`patient_axes`; default the CT axes.

    Examples
    --------
    >>> pose = pose_from_carm_angles(0, 0, [0, -160, 260], 600, "supine")
    >>> pose.beam_direction_lps.round(6).tolist()
    [0.0, -1.0, 0.0]
    """
    beam = beam_from_carm_angles(orbital_deg, tilt_deg, patient_position, axes)
    sup = (axes[2] if axes is not None else _S)
    return pose_from_beam(beam, isocenter_lps_mm, source_to_isocenter_mm, up_lps=sup)


def carm_angles_from_pose(pose: Pose, patient_position: str = "prone",
                          axes: tuple | None = None) -> CArmAngles:
    """Clinical angles of a pose's beam (the inverse of :func:`beam_from_carm_angles`)."""
    _check_position(patient_position)
    left, post, sup = axes if axes is not None else patient_axes()
    up = post if patient_position == "prone" else -post
    d = pose.beam_direction_lps
    tilt = math.degrees(math.asin(max(-1.0, min(1.0, d @ sup))))
    orbital = math.degrees(math.atan2(d @ left, d @ up))
    return CArmAngles(orbital_deg=orbital, tilt_deg=tilt)


INLET_TILT_RANGE_DEG = (15.0, 40.0)   # DOMAIN.md 21-33 deg, widened for landmark error
OUTLET_TILT_RANGE_DEG = (25.0, 55.0)  # DOMAIN.md 30-50 deg, widened likewise


def derive_view_tilts_deg(landmarks: Iterable) -> tuple[float | None, float | None]:
    """Per-patient inlet and outlet tilts from plan landmarks, where present.

    Rules (DOMAIN.md: the best angles follow the sacral morphology):

    * inlet: the beam runs along the anterior cortex of the S1 and S2 bodies, so they
      superimpose: the line ``sacral_promontory`` -> ``s2_anterior_body``;
    * outlet: the beam runs along the S1 endplate, which then shows as a line:
      ``sacral_promontory`` -> ``s1_endplate_posterior``.

    Angles are measured in the mid-sagittal plane from the AP axis (inlet towards
    caudal, outlet towards cranial). A derived angle outside the published range
    (widened: inlet 15-40 deg, outlet 25-55 deg) is taken as a landmark error and not
    used. Returns ``(inlet_tilt_deg, outlet_tilt_deg)``; each None when it cannot be
    derived.
    """
    landmarks = list(landmarks or ())
    pts = {}
    for lm in landmarks:
        kind, _, pos = _lm_fields(lm)
        pts.setdefault(kind, pos)
    if "sacral_promontory" not in pts:
        return None, None
    _, post, sup = patient_axes(landmarks)

    def tilt(to_kind: str, sign: float, allowed: tuple[float, float]) -> float | None:
        if to_kind not in pts:
            return None
        line = pts[to_kind] - pts["sacral_promontory"]
        a_post, a_sup = line @ post, sign * (line @ sup)
        if math.hypot(a_post, a_sup) < 5.0:
            return None
        angle = math.degrees(math.atan2(a_sup, abs(a_post)))
        return angle if allowed[0] <= angle <= allowed[1] else None

    return (tilt("s2_anterior_body", -1.0, INLET_TILT_RANGE_DEG),
            tilt("s1_endplate_posterior", 1.0, OUTLET_TILT_RANGE_DEG))


def sijf_view_pose(kind: str, entry_lps_mm: Sequence[float], apex_lps_mm: Sequence[float],
                   side: str, source_to_isocenter_mm: float, *, tilt_deg: float | None = None,
                   patient_position: str = "prone", landmarks: Iterable | None = None,
                   detector_on_operative_side: bool = True,
                   isocenter_lps_mm: Sequence[float] | None = None) -> Pose:
    """Pose of a named SIJF view for one implant.

    Parameters
    ----------
    kind : {'lateral', 'inlet', 'outlet', 'ap', 'axis'}
    entry_lps_mm, apex_lps_mm : (3,) array_like
        The implant's entry point and apex.
    side : {'left', 'right'}
        The operative side.
    source_to_isocenter_mm : float
    tilt_deg : float, optional
        Inlet/outlet tilt magnitude; default 25 (inlet) or 42 (outlet).
    patient_position : {'prone', 'supine'}
    landmarks : iterable, optional
        Plan landmarks, used for the patient's true axes (:func:`patient_axes`).
    detector_on_operative_side : bool
        Lateral view: the detector on the surgeon's side (scatter is highest on the
        tube side, so the surgeon stands by the detector). False puts the tube there.
    isocenter_lps_mm : (3,) array_like, optional
        Default: the implant's midpoint.

    Returns
    -------
    Pose
    """
    check_choice(kind, VIEW_KINDS, "kind")
    check_choice(side, SIDES, "side")
    _check_position(patient_position)
    entry = check_vector(entry_lps_mm, 3, "entry_lps_mm", unit="LPS mm")
    apex = check_vector(apex_lps_mm, 3, "apex_lps_mm", unit="LPS mm")
    axis = apex - entry
    if np.linalg.norm(axis) < 1e-6:
        raise InputError("entry and apex coincide", "entry_lps_mm/apex_lps_mm")
    iso = (entry + apex) / 2 if isocenter_lps_mm is None else np.asarray(isocenter_lps_mm, float)
    axes = patient_axes(landmarks)
    left, post, sup = axes
    if kind == "axis":
        return pose_from_beam(axis, iso, source_to_isocenter_mm, up_lps=sup)
    if kind == "lateral":
        toward_left = (side == "left") == detector_on_operative_side
        return pose_from_carm_angles(90.0 if toward_left else -90.0, 0.0, iso,
                                     source_to_isocenter_mm, patient_position, axes)
    if kind == "ap":
        return pose_from_carm_angles(0.0, 0.0, iso, source_to_isocenter_mm, patient_position, axes)
    default = DEFAULT_INLET_TILT_DEG if kind == "inlet" else DEFAULT_OUTLET_TILT_DEG
    t = default if tilt_deg is None else check_finite(tilt_deg, "tilt_deg")
    if not (0.0 <= t < 90.0):
        raise InputError(f"must be a magnitude in [0, 90) degrees, got {t}", "tilt_deg")
    # Inlet: the AP beam tilted towards caudal, i.e. the line (posterior, inferior).
    # Outlet: towards cranial, the line (posterior, superior). Which end the tube is at
    # follows from the patient position (the tube is under the table).
    sign = -1.0 if kind == "inlet" else 1.0
    line = math.cos(math.radians(t)) * post + sign * math.sin(math.radians(t)) * sup
    up_dir = post if patient_position == "prone" else -post
    beam = line if line @ up_dir > 0 else -line
    return pose_from_beam(beam, iso, source_to_isocenter_mm, up_lps=sup)
