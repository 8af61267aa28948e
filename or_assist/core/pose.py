"""Rigid transforms and the C-arm pose type ``T_source_from_patient`` (``or_assist.pose/1``).

A pose maps patient points (LPS, mm) to the source frame: origin at the focal spot, +z
along the central ray towards the detector, +x along image columns, +y along image rows
(``CONVENTIONS.md``). Projection with a pose lives in :mod:`or_assist.core.geometry`.

Examples
--------
>>> import numpy as np
>>> pose = Pose(np.array([[1, 0, 0, 0], [0, 0, -1, 260], [0, 1, 0, 760], [0, 0, 0, 1.0]]))
>>> pose.apply(np.array([[10.0, -160.0, 260.0]]))
array([[ 10.,   0., 600.]])
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from or_assist.core import jsonio
from or_assist.core.validate import check_vector
from or_assist.errors import InputError, SchemaError

__all__ = ["Pose", "rotation_about_axis", "rotation_angle_deg", "load_pose", "save_pose", "POSE_SCHEMA"]

POSE_SCHEMA = "or_assist.pose/1"

_ORTHONORMAL_TOL = 1e-6
#: The homogeneous last row and how far each entry may be off (``np.allclose``'s default
#: relative tolerance on top of 1e-9), written out: the check runs for every pose a
#: registration tries.
_LAST_ROW = np.array([0.0, 0.0, 0.0, 1.0])
_LAST_ROW_TOL = 1e-9 + 1e-5 * _LAST_ROW


def rotation_about_axis(axis: Sequence[float], angle_rad: float) -> np.ndarray:
    """Rotation matrix for a right-handed rotation about ``axis`` (Rodrigues).

    Parameters
    ----------
    axis : (3,) array_like
        Rotation axis; need not be unit length, must not be zero.
    angle_rad : float
        Angle in radians.

    Returns
    -------
    (3, 3) float64 ndarray
    """
    a = check_vector(axis, 3, "axis", nonzero=True)
    a = a / np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle_rad) * k + (1 - math.cos(angle_rad)) * (k @ k)


def rotation_angle_deg(r_a: np.ndarray, r_b: np.ndarray | None = None) -> float:
    """Geodesic angle in degrees of ``r_a`` (or of ``r_a @ r_b.T`` when ``r_b`` given)."""
    r = np.asarray(r_a, dtype=np.float64)[:3, :3]
    if r_b is not None:
        r = r @ np.asarray(r_b, dtype=np.float64)[:3, :3].T
    c = (np.trace(r) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


@dataclass(frozen=True, eq=False)
class Pose:
    """A rigid transform; as a C-arm pose it is ``T_source_from_patient``.

    Parameters
    ----------
    matrix : (4, 4) array_like
        Homogeneous matrix. The rotation part must be orthonormal with det = +1, the
        last row ``[0, 0, 0, 1]``, everything finite. Translation in mm.

    Notes
    -----
    ``a.compose(b)`` is ``a @ b``: apply ``b`` first, then ``a``; so
    ``T_source_from_patient.compose(T_patient_from_postop)`` is
    ``T_source_from_postop``.
    """

    matrix: np.ndarray

    def __post_init__(self):
        m = _validate_pose_matrix(self.matrix, "matrix")
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)

    # construction ---------------------------------------------------------
    @classmethod
    def identity(cls) -> "Pose":
        """The identity transform."""
        return cls(np.eye(4))

    @classmethod
    def from_rotation_translation(cls, rotation: np.ndarray, translation_mm: Sequence[float]) -> "Pose":
        """Build from a (3, 3) rotation and a (3,) translation in mm."""
        m = np.eye(4)
        m[:3, :3] = np.asarray(rotation, dtype=np.float64)
        m[:3, 3] = np.asarray(translation_mm, dtype=np.float64)
        return cls(m)

    # parts ----------------------------------------------------------------
    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) rotation; its rows are the source axes in patient coordinates."""
        return self.matrix[:3, :3]

    @property
    def translation_mm(self) -> np.ndarray:
        """(3,) translation in mm."""
        return self.matrix[:3, 3]

    @property
    def source_position_lps_mm(self) -> np.ndarray:
        """(3,) where the source frame's origin (the focal spot) is, in patient mm."""
        return -self.rotation.T @ self.translation_mm

    @property
    def beam_direction_lps(self) -> np.ndarray:
        """(3,) unit vector of the central ray (source towards detector), patient frame."""
        return self.rotation[2].copy()

    # algebra --------------------------------------------------------------
    def compose(self, other: "Pose") -> "Pose":
        """``self @ other``: apply ``other`` first, then ``self``."""
        return Pose(self.matrix @ other.matrix)

    def inverse(self) -> "Pose":
        """The inverse transform."""
        r = self.rotation
        return Pose.from_rotation_translation(r.T, -r.T @ self.translation_mm)

    def apply(self, points_mm: np.ndarray) -> np.ndarray:
        """Map points: (N, 3) or (3,) mm in, same shape out (float64)."""
        p = np.asarray(points_mm, dtype=np.float64)
        if p.shape[-1] != 3:
            raise InputError(f"must have shape (N, 3) or (3,), got {p.shape}", "points_mm")
        return p @ self.rotation.T + self.translation_mm

    def apply_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Rotate direction vectors (no translation): (N, 3) or (3,)."""
        return np.asarray(vectors, dtype=np.float64) @ self.rotation.T

    def __matmul__(self, other: "Pose") -> "Pose":
        return self.compose(other)

    def __eq__(self, other) -> bool:
        return isinstance(other, Pose) and np.array_equal(self.matrix, other.matrix)

    def __hash__(self):
        return hash(self.matrix.tobytes())

    def allclose(self, other: "Pose", atol_mm: float = 1e-6, atol_rot: float = 1e-9) -> bool:
        """True when rotation and translation agree within tolerances."""
        return bool(np.allclose(self.rotation, other.rotation, atol=atol_rot)
                    and np.allclose(self.translation_mm, other.translation_mm, atol=atol_mm))

    def __repr__(self) -> str:
        src = np.round(self.source_position_lps_mm, 1).tolist()
        beam = np.round(self.beam_direction_lps, 3).tolist()
        return f"Pose(source_lps_mm={src}, beam={beam})"

    # files ----------------------------------------------------------------
    def to_dict(self) -> dict:
        """The ``or_assist.pose/1`` document."""
        return {"schema": POSE_SCHEMA, "T_source_from_patient": self.matrix.tolist()}

    @classmethod
    def from_dict(cls, doc: dict, where: str = "pose") -> "Pose":
        """Parse an ``or_assist.pose/1`` document (or any dict with the pose field)."""
        arr = jsonio.field_array(doc, "T_source_from_patient", where, (4, 4))
        return cls(_validate_pose_matrix(arr, "T_source_from_patient", where))


def _validate_pose_matrix(matrix, name: str, where: str | None = None) -> np.ndarray:
    err = SchemaError if where else InputError
    src = f"{where}: field '{name}'" if where else name
    try:
        m = np.array(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise err("must be a 4 x 4 numeric matrix", src) from None
    if m.shape != (4, 4):
        raise err(f"must be a 4 x 4 matrix, got shape {m.shape}", src)
    if not np.isfinite(m).all():
        raise err("contains NaN or inf", src)
    if (np.abs(m[3] - _LAST_ROW) > _LAST_ROW_TOL).any():
        raise err(f"last row must be [0, 0, 0, 1], got {m[3].tolist()}", src)
    r = m[:3, :3]
    dev = np.abs(r @ r.T - np.eye(3)).max()
    if dev > _ORTHONORMAL_TOL:
        raise err(f"rotation part is not orthonormal (max |R R^T - I| = {dev:.2e})", src)
    if np.linalg.det(r) < 0:
        raise err("rotation part has det = -1 (a reflection); flips belong to the image, not the pose", src)
    # Re-orthonormalise the tiny residual so long compositions stay exact.
    u, _, vt = np.linalg.svd(r)
    m[:3, :3] = u @ vt
    return m


def load_pose(path: str | os.PathLike) -> Pose:
    """Read an ``or_assist.pose/1`` (or ``or_assist.registration/1``) file.

    The pose field of a registration result is read too, so the output of
    ``or-assist register`` can be given where a pose is expected.
    """
    doc = jsonio.read_json(path)
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if schema == "or_assist.registration/1":
        return Pose.from_dict(doc, str(path))
    jsonio.check_schema(doc, POSE_SCHEMA, str(path))
    return Pose.from_dict(doc, str(path))


def save_pose(pose: Pose, path: str | os.PathLike) -> Path:
    """Write ``pose`` as ``or_assist.pose/1``."""
    return jsonio.write_json(path, pose.to_dict())
