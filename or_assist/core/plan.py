"""The virtual surgical plan: implant catalogue, implants, landmarks, views, JSON I/O.

A plan (schema ``or_assist.plan/1``) names its CT (path and the SHA-256 of the voxel
data), the implant catalogue it uses, the implants (entry and apex in LPS mm), optional
anatomical landmarks and the named virtual C-arm views. Every 3D point is in the
patient frame of the CT (LPS, mm; see ``CONVENTIONS.md``).

Implant geometry (:func:`implant_mesh`): an equilateral triangular prism whose
cross-section has the catalogue item's inscribed diameter ``d`` (inscribed radius
``d / 2``, circumradius ``d``), running from the entry point to ``apex - taper * axis``
and tapering to a point at the apex. Roll reference: at ``roll_deg = 0`` one vertex of
the triangle points towards patient posterior (+y, LPS) projected onto the plane
perpendicular to the axis (towards superior, +z, when the axis is within about 18 deg
of the y axis); a positive roll turns the triangle right-handedly about the axis
(entry -> apex).

The catalogue types live in :mod:`or_assist.core.catalogue`.

Longer than 400 lines because the plan's types, the one reader and writer of their
schema (every field checked, its name in the error) and the implant's shape that the
schema defines stay together; rendering, checks and editing of plans live elsewhere.

Examples
--------
>>> plan = Plan(None, None, [Implant("L1", "left", load_catalogue().item("T7-45"),
...                                  [60.0, 20.0, 100.0], [15.0, 25.0, 100.0])])
>>> round(plan.implant("L1").length_mm, 2)
45.28
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from or_assist.core import jsonio
from or_assist.core.catalogue import (Catalogue,
                                      CatalogueItem, load_catalogue)
from or_assist.core.validate import check_choice, check_finite, check_positive, check_vector
from or_assist.core.vocabulary import SIDES, VIEW_KINDS
from or_assist.errors import InputError, SchemaError

__all__ = [
    "PLAN_SCHEMA",
    "IMPLANT_SIDES",
    "LANDMARK_KINDS",
    "LANDMARK_SIDES",
    "Implant",
    "Landmark",
    "ViewSpec",
    "Plan",
    "plan_to_dict",
    "plan_from_dict",
    "load_plan",
    "save_plan",
    "implant_vertex_directions",
    "implant_mesh",
    "default_views",
    "check_implants_in_ct",
    "load_plan_ct",
]

PLAN_SCHEMA = "or_assist.plan/1"
IMPLANT_SIDES = SIDES
LANDMARK_KINDS = ("s1_foramen", "s2_foramen", "spinal_canal", "sacral_promontory", "alar_line",
                  "s1_endplate_posterior", "s2_anterior_body", "si_joint")
LANDMARK_SIDES = ("left", "right", "midline")

_MIN_IMPLANT_LENGTH_MM = 1e-3   # entry and apex closer than this are "the same point"


# --------------------------------------------------------------------------- plan items


def _point3(value: Any, name: str, where: str) -> np.ndarray:
    arr = check_vector(value, 3, f"{where}: {name}", unit="LPS mm")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Implant:
    """One planned implant.

    Attributes
    ----------
    id : str
        Unique within the plan, e.g. ``"L1"``.
    side : {"left", "right"}
        Patient side.
    item : CatalogueItem
        The implant size.
    entry_lps_mm, apex_lps_mm : (3,) float64 ndarray, LPS mm
        Entry point on the lateral iliac cortex and the apex (tip) in the sacrum.
    roll_deg : float
        Rotation of the triangle about the axis from the reference in the module doc.
    level : str or None
        e.g. ``"S1"``, ``"S2"``.
    """

    id: str
    side: str
    item: CatalogueItem
    entry_lps_mm: np.ndarray
    apex_lps_mm: np.ndarray
    roll_deg: float = 0.0
    level: str | None = None

    def __post_init__(self):
        where = f"implant {self.id!r}"
        if not isinstance(self.id, str) or not self.id:
            raise InputError(f"id must be a non-empty string, got {self.id!r}", "implant")
        check_choice(self.side, IMPLANT_SIDES, f"{where}: side")
        if not isinstance(self.item, CatalogueItem):
            raise InputError(f"item must be a CatalogueItem, got {type(self.item).__name__}", where)
        entry = _point3(self.entry_lps_mm, "entry_lps_mm", where)
        apex = _point3(self.apex_lps_mm, "apex_lps_mm", where)
        if np.linalg.norm(apex - entry) < _MIN_IMPLANT_LENGTH_MM:
            raise InputError(f"entry and apex are the same point {entry.tolist()}", where)
        check_finite(self.roll_deg, f"{where}: roll_deg")
        object.__setattr__(self, "entry_lps_mm", entry)
        object.__setattr__(self, "apex_lps_mm", apex)
        object.__setattr__(self, "roll_deg", float(self.roll_deg))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Implant):
            return NotImplemented
        return (self.id, self.side, self.item, self.roll_deg, self.level) == \
            (other.id, other.side, other.item, other.roll_deg, other.level) and \
            np.array_equal(self.entry_lps_mm, other.entry_lps_mm) and \
            np.array_equal(self.apex_lps_mm, other.apex_lps_mm)

    __hash__ = None  # type: ignore[assignment]

    @property
    def axis_unit(self) -> np.ndarray:
        """(3,) float64 unit vector from entry to apex."""
        d = self.apex_lps_mm - self.entry_lps_mm
        return d / np.linalg.norm(d)

    @property
    def length_mm(self) -> float:
        """Planned length ``|apex - entry|`` (the catalogue length is ``item.length_mm``)."""
        return float(np.linalg.norm(self.apex_lps_mm - self.entry_lps_mm))


@dataclass(frozen=True, eq=False)
class Landmark:
    """An anatomical landmark: a point (or a sphere of ``radius_mm``) in LPS mm."""

    name: str
    kind: str
    side: str
    position_lps_mm: np.ndarray
    radius_mm: float = 0.0

    def __post_init__(self):
        where = f"landmark {self.name!r}"
        check_choice(self.kind, LANDMARK_KINDS, f"{where}: kind")
        check_choice(self.side, LANDMARK_SIDES, f"{where}: side")
        check_positive(self.radius_mm, f"{where}: radius_mm", allow_zero=True)
        object.__setattr__(self, "position_lps_mm", _point3(self.position_lps_mm, "position_lps_mm", where))
        object.__setattr__(self, "radius_mm", float(self.radius_mm))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Landmark):
            return NotImplemented
        return (self.name, self.kind, self.side, self.radius_mm) == \
            (other.name, other.kind, other.side, other.radius_mm) and \
            np.array_equal(self.position_lps_mm, other.position_lps_mm)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class ViewSpec:
    """A named virtual C-arm view: its kind, the implant it centres on, and its tilt."""

    name: str
    kind: str
    implant: str | None = None
    tilt_deg: float | None = None

    def __post_init__(self):
        check_choice(self.kind, VIEW_KINDS, f"view {self.name!r}: kind")


# --------------------------------------------------------------------------- plan


@dataclass
class Plan:
    """A virtual surgical plan in the patient frame of one CT.

    Attributes
    ----------
    ct_path : Path or None
        The CT file (absolute once loaded); ``None`` for an in-memory plan without one.
    ct_sha256 : str or None
        ``CTVolume.voxel_sha256()`` of that CT.
    implants, landmarks, views : lists
    catalogue : Catalogue
    source : str or None
        The file the plan was read from (used to name it in error messages).
    """

    ct_path: Path | None
    ct_sha256: str | None
    implants: list[Implant]
    landmarks: list[Landmark] = field(default_factory=list)
    views: list[ViewSpec] = field(default_factory=list)
    catalogue: Catalogue = field(default_factory=load_catalogue)
    source: str | None = None

    def __post_init__(self):
        ids = [i.id for i in self.implants]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise InputError(f"duplicate implant ids {', '.join(dup)}", self.source or "plan")

    def implant(self, implant_id: str) -> Implant:
        """The implant with this id; an :class:`InputError` naming the valid ids if unknown."""
        for imp in self.implants:
            if imp.id == implant_id:
                return imp
        raise InputError(f"no implant {implant_id!r} in the plan; valid ids: "
                         f"{', '.join(i.id for i in self.implants) or '(none)'}", "implant")

    def sha256(self) -> str:
        """SHA-256 of the plan's canonical JSON (content only: CT hash, catalogue contents,
        implants, landmarks, views; not file paths), as 64 hex digits."""
        doc = plan_to_dict(self)
        doc["ct"] = None if self.ct_sha256 is None else {"sha256": self.ct_sha256}
        doc["catalogue"] = self.catalogue.to_canonical()
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _path_for_file(path: Path, base_dir: Path | None) -> str:
    """Relative to ``base_dir`` when the file lies under it, else absolute (POSIX slashes)."""
    path = Path(path)
    if base_dir is not None and path.is_absolute():
        try:
            return path.relative_to(Path(base_dir).resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def plan_to_dict(plan: Plan, base_dir: str | os.PathLike | None = None) -> dict:
    """The ``or_assist.plan/1`` document of a plan; file paths relative to ``base_dir``
    when they lie under it."""
    base = None if base_dir is None else Path(base_dir)
    ct = None
    if plan.ct_path is not None or plan.ct_sha256 is not None:
        ct = {"path": None if plan.ct_path is None else _path_for_file(plan.ct_path, base),
              "sha256": plan.ct_sha256}
    cat = plan.catalogue.path
    implants = []
    for imp in plan.implants:
        d = {"id": imp.id, "side": imp.side, "item": imp.item.id,
             "entry_lps_mm": imp.entry_lps_mm.tolist(), "apex_lps_mm": imp.apex_lps_mm.tolist(),
             "roll_deg": imp.roll_deg}
        if imp.level is not None:
            d["level"] = imp.level
        implants.append(d)
    return {
        "schema": PLAN_SCHEMA,
        "ct": ct,
        "catalogue": None if cat is None else _path_for_file(cat, base),
        "implants": implants,
        "landmarks": [{"name": lm.name, "kind": lm.kind, "side": lm.side,
                       "position_lps_mm": lm.position_lps_mm.tolist(), "radius_mm": lm.radius_mm}
                      for lm in plan.landmarks],
        "views": [{"name": v.name, "kind": v.kind, "implant": v.implant, "tilt_deg": v.tilt_deg}
                  for v in plan.views],
    }


def _resolve(path_text: str, base_dir: Path | None) -> Path:
    p = Path(path_text)
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return p


def _list_field(doc: dict, name: str, where: str, default: Any = None) -> list:
    value = jsonio.field(doc, name, where, default)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SchemaError(f"field '{name}' must be a list, got {type(value).__name__}", where)
    for k, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise SchemaError(f"{name}[{k}] must be an object", where)
    return value


def plan_from_dict(doc: dict, where: str = "plan", base_dir: str | os.PathLike | None = None) -> Plan:
    """Parse an ``or_assist.plan/1`` document.

    Parameters
    ----------
    doc : dict
        The parsed JSON.
    where : str
        Names the document (usually its file) in error messages.
    base_dir : path-like, optional
        Relative CT and catalogue paths are resolved against it (the plan's folder).

    Raises
    ------
    SchemaError
        Unknown schema, a missing or malformed field, an unknown item id or a length not
        in the catalogue, entry == apex, NaN in a point, duplicate implant ids, a view
        naming an unknown implant; the message names ``where`` and the field.
    """
    jsonio.check_schema(doc, PLAN_SCHEMA, where)
    base = None if base_dir is None else Path(base_dir)
    ct = jsonio.field(doc, "ct", where)
    ct_path = ct_sha = None
    if ct is not None:
        if not isinstance(ct, dict):
            raise SchemaError("field 'ct' must be an object {path, sha256} or null", where)
        cw = f"{where}: ct"
        ct_path = _resolve(jsonio.field_str(ct, "path", cw), base)
        ct_sha = jsonio.field_str(ct, "sha256", cw).lower()
        if len(ct_sha) != 64 or any(c not in "0123456789abcdef" for c in ct_sha):
            raise SchemaError(f"field 'sha256' must be 64 hex digits, got {ct_sha!r}", cw)
    cat_ref = jsonio.field(doc, "catalogue", where, None)
    if cat_ref is not None and not isinstance(cat_ref, str):
        raise SchemaError(f"field 'catalogue' must be null or a path, got {cat_ref!r}", where)
    try:
        catalogue = load_catalogue(None if cat_ref is None else _resolve(cat_ref, base))
    except InputError as exc:
        raise type(exc)(f"field 'catalogue': {exc}", where) from None

    implants: list[Implant] = []
    for k, d in enumerate(_list_field(doc, "implants", where)):
        iw = f"{where}: implants[{k}]"
        imp_id = jsonio.field_str(d, "id", iw)
        if not imp_id:
            raise SchemaError("field 'id' must not be empty", iw)
        if any(i.id == imp_id for i in implants):
            raise SchemaError(f"duplicate implant id {imp_id!r}", iw)
        side = jsonio.field_str(d, "side", iw, choices=IMPLANT_SIDES)
        item_id = jsonio.field_str(d, "item", iw)
        try:
            item = catalogue.item(item_id)
        except InputError:
            raise SchemaError(f"field 'item': {item_id!r} is not in the catalogue "
                              f"({catalogue.name or catalogue.path}); valid ids: {', '.join(catalogue.items)}",
                              iw) from None
        entry = jsonio.field_array(d, "entry_lps_mm", iw, (3,))
        apex = jsonio.field_array(d, "apex_lps_mm", iw, (3,))
        if np.linalg.norm(apex - entry) < _MIN_IMPLANT_LENGTH_MM:
            raise SchemaError(f"fields 'entry_lps_mm' and 'apex_lps_mm' are the same point "
                              f"{entry.tolist()}", iw)
        roll = jsonio.field_float(d, "roll_deg", iw, default=0.0)
        level = jsonio.field(d, "level", iw, None)
        if level is not None and not isinstance(level, str):
            raise SchemaError(f"field 'level' must be a string or null, got {level!r}", iw)
        implants.append(Implant(imp_id, side, item, entry, apex, roll, level))

    landmarks: list[Landmark] = []
    for k, d in enumerate(_list_field(doc, "landmarks", where)):
        lw = f"{where}: landmarks[{k}]"
        radius = jsonio.field_float(d, "radius_mm", lw, default=0.0)
        if radius < 0:
            raise SchemaError(f"field 'radius_mm' must be >= 0, got {radius!r}", lw)
        landmarks.append(Landmark(jsonio.field_str(d, "name", lw),
                                  jsonio.field_str(d, "kind", lw, choices=LANDMARK_KINDS),
                                  jsonio.field_str(d, "side", lw, choices=LANDMARK_SIDES),
                                  jsonio.field_array(d, "position_lps_mm", lw, (3,)), radius))

    views: list[ViewSpec] = []
    ids = {i.id for i in implants}
    for k, d in enumerate(_list_field(doc, "views", where)):
        vw = f"{where}: views[{k}]"
        implant_ref = jsonio.field(d, "implant", vw, None)
        if implant_ref is not None and implant_ref not in ids:
            raise SchemaError(f"field 'implant' names {implant_ref!r}, which is not an implant of "
                              f"the plan (valid: {', '.join(sorted(ids)) or 'none'})", vw)
        tilt = jsonio.field(d, "tilt_deg", vw, None)
        if tilt is not None:
            tilt = jsonio.field_float(d, "tilt_deg", vw)
        views.append(ViewSpec(jsonio.field_str(d, "name", vw),
                              jsonio.field_str(d, "kind", vw, choices=VIEW_KINDS), implant_ref, tilt))
    return Plan(ct_path, ct_sha, implants, landmarks, views, catalogue, source=where)


def load_plan(path: str | os.PathLike) -> Plan:
    """Read an ``or_assist.plan/1`` file (relative paths resolve against its folder).

    Only the JSON is checked here; :func:`load_plan_ct` loads and checks its CT.
    """
    path = Path(path)
    doc = jsonio.read_json(path, PLAN_SCHEMA)
    return plan_from_dict(doc, str(path), base_dir=path.resolve().parent)


def save_plan(plan: Plan, path: str | os.PathLike) -> Path:
    """Write the plan as ``or_assist.plan/1`` (paths under its folder are written relative)."""
    path = Path(path)
    return jsonio.write_json(path, plan_to_dict(plan, base_dir=path.resolve().parent))


# --------------------------------------------------------------------------- geometry


def implant_vertex_directions(implant: Implant) -> np.ndarray:
    """Unit vectors from the axis to the three triangle vertices.

    Returns
    -------
    (3, 3) float64 ndarray
        Row k is the direction of vertex k (perpendicular to the axis), at angle
        ``roll_deg + 120 k`` right-handed about the axis from the reference (module doc).
    """
    a = implant.axis_unit
    ref = np.array([0.0, 1.0, 0.0]) if abs(a[1]) <= 0.95 else np.array([0.0, 0.0, 1.0])
    u = ref - a * (ref @ a)
    u /= np.linalg.norm(u)
    v = np.cross(a, u)
    ang = np.deg2rad(implant.roll_deg + np.array([0.0, 120.0, 240.0]))
    return np.cos(ang)[:, None] * u + np.sin(ang)[:, None] * v


def implant_mesh(implant: Implant) -> tuple[np.ndarray, np.ndarray]:
    """A closed triangle mesh of the implant in patient coordinates.

    The prism (circumradius = inscribed diameter) runs from the entry to
    ``apex - taper * axis`` and tapers to a point at the apex; the taper is the item's
    ``tip_taper_mm``, shortened to half the implant when the implant is shorter.

    Returns
    -------
    vertices : (V, 3) float64 ndarray, LPS mm
    faces : (F, 3) int32 ndarray
        Counter-clockwise seen from outside (normals point outwards).
    """
    a = implant.axis_unit
    dirs = implant_vertex_directions(implant) * implant.item.circumradius_mm
    taper = min(implant.item.tip_taper_mm, 0.5 * implant.length_mm)
    entry, apex = implant.entry_lps_mm, implant.apex_lps_mm
    shoulder = apex - taper * a
    verts = [entry + dirs, shoulder + dirs]
    faces = [[0, 2, 1]]                                   # entry cap, normal -axis
    for k in range(3):
        k1 = (k + 1) % 3
        faces += [[k, k1, 3 + k1], [k, 3 + k1, 3 + k]]    # sides
    if taper > 0:
        verts.append(apex[None, :])
        faces += [[3 + k, 3 + (k + 1) % 3, 6] for k in range(3)]
    else:
        faces.append([3, 4, 5])                           # flat end, normal +axis
    return np.vstack(verts).astype(np.float64), np.asarray(faces, dtype=np.int32)


def default_views(plan: Plan) -> list[ViewSpec]:
    """Lateral, inlet, outlet and axis views for each implant.

    Inlet and outlet tilts are left open (``None``): they are derived per patient from
    the plan's landmarks where possible, else the DOMAIN.md defaults of 25 and 42 deg
    (see :func:`or_assist.core.view_poses.view_tilt_deg`).

    A plan without implants gets one lateral, inlet and outlet view of the whole pelvis.
    """
    if not plan.implants:
        return [ViewSpec("lateral", "lateral"), ViewSpec("inlet", "inlet"),
                ViewSpec("outlet", "outlet")]
    views = []
    for imp in plan.implants:
        views += [ViewSpec(f"{imp.id} lateral", "lateral", imp.id, None),
                  ViewSpec(f"{imp.id} inlet", "inlet", imp.id),
                  ViewSpec(f"{imp.id} outlet", "outlet", imp.id),
                  ViewSpec(f"{imp.id} axis", "axis", imp.id, None)]
    return views


# --------------------------------------------------------------------------- plan vs CT


def check_implants_in_ct(plan: Plan, ct) -> None:
    """Raise an :class:`InputError` naming the implant and point if an entry or apex lies
    outside the CT volume box.

    Parameters
    ----------
    plan : Plan
    ct : CTVolume
    """
    where = plan.source or "plan"
    for k, imp in enumerate(plan.implants):
        inside = np.asarray(ct.contains(np.vstack([imp.entry_lps_mm, imp.apex_lps_mm])))
        for ok, name, p in zip(inside, ("entry_lps_mm", "apex_lps_mm"), (imp.entry_lps_mm, imp.apex_lps_mm)):
            if not ok:
                raise InputError(f"implant {imp.id!r}: field '{name}' {np.round(p, 2).tolist()} "
                                 f"lies outside the CT volume", f"{where}: implants[{k}]")


def load_plan_ct(plan: Plan, *, ct_path: str | os.PathLike | None = None,
                 allow_ct_mismatch: bool = False):
    """Load the plan's CT and check that it is the CT the plan was made on.

    Parameters
    ----------
    plan : Plan
    ct_path : path-like, optional
        Use this CT file instead of the plan's ``ct.path``.
    allow_ct_mismatch : bool
        If True, a voxel SHA-256 that differs from the plan's ``ct.sha256`` is returned
        as a warning instead of raised (to check a plan on a re-exported CT anyway).

    Returns
    -------
    ct : CTVolume
    warnings : list of str
        The overridden mismatch, if any.

    Raises
    ------
    InputError
        The plan names no CT; the CT file is missing; its voxel SHA-256 differs from the
        plan's (unless allowed); an implant's entry or apex lies outside the CT volume.
    """
    from or_assist.core.ct.load import load_ct  # SimpleITK: imported on use

    where = plan.source or "plan"
    path = plan.ct_path if ct_path is None else Path(ct_path)
    if path is None:
        raise InputError("field 'ct' is null: the plan names no CT to check it against", where)
    if not Path(path).exists():
        field_name = "ct.path" if ct_path is None else "ct_path argument"
        raise InputError(f"{field_name}: CT file not found: {path}", where)
    ct = load_ct(path)
    warnings: list[str] = []
    actual = ct.voxel_sha256()
    if plan.ct_sha256 is not None and actual != plan.ct_sha256:
        msg = (f"field 'ct.sha256' ({plan.ct_sha256[:12]}...) does not match the voxel data of "
               f"{path} ({actual[:12]}...): the plan was made on a different CT")
        if not allow_ct_mismatch:
            raise InputError(msg + "; override with --ignore-hash (allow_ct_mismatch=True)", where)
        warnings.append(f"WARNING: {where}: {msg}; checking anyway")
    check_implants_in_ct(plan, ct)
    return ct, warnings
