"""The planner's edit model: a plan with undo/redo.

:class:`PlanEditor` holds the plan being edited on one CT. Every edit (add, move, resize,
roll, rename, delete an implant; add, move, delete a landmark; set a view tilt) replaces
the plan's immutable items and pushes the previous state on the undo stack; listeners
are called after each change. The GUI only calls these methods, so everything it can
do is tested without Qt.

Catalogue snapping is :mod:`or_assist.planning.snap`, safe saving
:mod:`or_assist.planning.save`.

Examples
--------
>>> ed = PlanEditor(ct, plan)                                            # doctest: +SKIP
>>> imp, note = ed.add_implant(entry, apex)                              # doctest: +SKIP
>>> ed.set_length(imp.id, 50.0); ed.undo(); ed.redo()                    # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from or_assist.core.catalogue import Catalogue
from or_assist.core.plan import (IMPLANT_SIDES, LANDMARK_KINDS, Implant, Landmark, Plan, ViewSpec)
from or_assist.core.validate import check_finite, check_vector
from or_assist.errors import InputError
from or_assist.planning.save import save_plan_checked
from or_assist.planning.snap import infer_side, snap_length

__all__ = [
    "DEFAULT_FAMILY",
    "DEFAULT_LANDMARK_RADIUS_MM",
    "PlanEditor",
]

DEFAULT_FAMILY = "T7"
#: Radius given to a landmark placed by a click, by kind (mm): foramina and canal are
#: spheres that the clearance check keeps implants away from; the others are points.
DEFAULT_LANDMARK_RADIUS_MM = {"s1_foramen": 5.0, "s2_foramen": 4.0, "spinal_canal": 8.0}
_MAX_UNDO = 200


@dataclass(frozen=True)
class _State:
    implants: tuple
    landmarks: tuple
    views: tuple


class PlanEditor:
    """A plan on one CT with undo/redo (module doc).

    Parameters
    ----------
    ct : CTVolume
        The CT the plan is made on (points must lie inside it).
    plan : Plan, optional
        Start from this plan (its CT hash must match); default an empty plan.

    Attributes
    ----------
    ct : CTVolume
    ct_sha256 : str
    family : str
        Family used for new implants (default ``"T7"``).
    """

    def __init__(self, ct, plan: Plan | None = None):
        self.ct = ct
        self.ct_sha256 = ct.voxel_sha256()
        if plan is None:
            src = ct.source or None
            plan = Plan(Path(src).resolve() if src else None, self.ct_sha256, [])
        elif plan.ct_sha256 is not None and plan.ct_sha256 != self.ct_sha256:
            raise InputError(f"field 'ct.sha256' ({plan.ct_sha256[:12]}...) does not match the voxel data "
                             f"of {ct.source} ({self.ct_sha256[:12]}...): the plan was made on a different CT",
                             plan.source or "plan")
        self._base = plan
        self._state = _State(tuple(plan.implants), tuple(plan.landmarks), tuple(plan.views))
        self._undo: list[tuple[str, _State]] = []
        self._redo: list[tuple[str, _State]] = []
        self._listeners: list[Callable[[str], None]] = []
        self.family = DEFAULT_FAMILY
        self.saved_state = self._state

    # ------------------------------------------------------------------ state
    @property
    def plan(self) -> Plan:
        """The current plan (a new :class:`Plan` object sharing the immutable items)."""
        b = self._base
        ct_path = b.ct_path
        if ct_path is None and self.ct.source:
            ct_path = Path(self.ct.source).resolve()
        return Plan(ct_path, self.ct_sha256, list(self._state.implants), list(self._state.landmarks),
                    list(self._state.views), b.catalogue, b.source)

    @property
    def catalogue(self) -> Catalogue:
        return self._base.catalogue

    @property
    def implants(self) -> list[Implant]:
        return list(self._state.implants)

    @property
    def landmarks(self) -> list[Landmark]:
        return list(self._state.landmarks)

    @property
    def modified(self) -> bool:
        """Whether the plan differs from the last saved (or loaded) state."""
        return self._state != self.saved_state

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(description)`` after every change, undo and redo."""
        self._listeners.append(callback)

    def _commit(self, description: str, state: _State) -> None:
        Plan(None, None, list(state.implants))             # duplicate ids -> InputError, state kept
        self._undo.append((description, self._state))
        del self._undo[:-_MAX_UNDO]
        self._redo.clear()
        self._state = state
        self._notify(description)

    def _notify(self, description: str) -> None:
        for cb in list(self._listeners):
            cb(description)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> str | None:
        """Undo the last edit; returns its description (None when there is nothing to undo)."""
        if not self._undo:
            return None
        desc, prev = self._undo.pop()
        self._redo.append((desc, self._state))
        self._state = prev
        self._notify(f"undo {desc}")
        return desc

    def redo(self) -> str | None:
        """Redo the last undone edit; returns its description (None when there is none)."""
        if not self._redo:
            return None
        desc, nxt = self._redo.pop()
        self._undo.append((desc, self._state))
        self._state = nxt
        self._notify(f"redo {desc}")
        return desc

    # ------------------------------------------------------------------ helpers
    def check_inside(self, point_lps_mm, what: str = "point") -> np.ndarray:
        """The point as a (3,) array; an :class:`InputError` when it lies outside the CT."""
        p = check_vector(point_lps_mm, 3, what, unit="LPS mm")
        if not bool(self.ct.contains(p)):
            raise InputError(f"{np.round(p, 1).tolist()} lies outside the CT volume; click inside the image",
                             what)
        return p

    def midline_x_mm(self) -> float:
        """Patient midline (LPS x, mm): mean x of midline landmarks, else the CT box centre."""
        xs = [lm.position_lps_mm[0] for lm in self._state.landmarks if lm.side == "midline"]
        if xs:
            return float(np.mean(xs))
        c = self.ct.corners_lps_mm()
        return float(0.5 * (c[:, 0].min() + c[:, 0].max()))

    def implant(self, implant_id: str) -> Implant:
        for imp in self._state.implants:
            if imp.id == implant_id:
                return imp
        raise InputError(f"no implant {implant_id!r}; ids: {', '.join(i.id for i in self._state.implants) or '(none)'}",
                         "implant")

    def next_implant_id(self, side: str) -> str:
        """``"L<n>"`` or ``"R<n>"`` with the smallest unused n."""
        prefix = "L" if side == "left" else "R"
        taken = {i.id for i in self._state.implants}
        n = 1
        while f"{prefix}{n}" in taken:
            n += 1
        return f"{prefix}{n}"

    def _replace_implant(self, implant_id: str, new: Implant, description: str) -> Implant:
        imps = [new if i.id == implant_id else i for i in self._state.implants]
        self._commit(description, dataclasses.replace(self._state, implants=tuple(imps)))
        return new

    # ------------------------------------------------------------------ implants
    def add_implant(self, entry_lps_mm, apex_lps_mm, *, side: str | None = None, implant_id: str | None = None,
                    family: str | None = None, level: str | None = None,
                    roll_deg: float = 0.0) -> tuple[Implant, str]:
        """Add an implant from an entry and an apex click (length snapped, module doc).

        Returns
        -------
        implant : Implant
        message : str
            Empty, or why the length was clamped.

        Raises
        ------
        InputError
            A point outside the CT, entry == apex, a duplicate id, an unknown family or side.
        """
        entry = self.check_inside(entry_lps_mm, "entry")
        apex = self.check_inside(apex_lps_mm, "apex")
        fam = family or self.family
        snap = snap_length(self.catalogue, fam, entry, apex)
        side = side or infer_side(entry, self.midline_x_mm())
        if side not in IMPLANT_SIDES:
            raise InputError(f"must be one of {', '.join(IMPLANT_SIDES)}, got {side!r}", "side")
        implant_id = implant_id or self.next_implant_id(side)
        if any(i.id == implant_id for i in self._state.implants):
            raise InputError(f"id {implant_id!r} is already used by another implant", "implant id")
        imp = Implant(implant_id, side, snap.item, entry, snap.apex_lps_mm, float(roll_deg), level)
        self._commit(f"add implant {implant_id}", dataclasses.replace(
            self._state, implants=self._state.implants + (imp,)))
        return imp, snap.message

    def move_end(self, implant_id: str, end: str, point_lps_mm, *, snap: bool = True) -> tuple[Implant, str]:
        """Move an implant's ``"entry"`` or ``"apex"`` (the length is re-snapped).

        Moving the entry keeps the apex and snaps the entry back along the new axis;
        moving the apex keeps the entry.
        """
        if end not in ("entry", "apex"):
            raise InputError(f"must be 'entry' or 'apex', got {end!r}", "end")
        p = self.check_inside(point_lps_mm, end)
        imp = self.implant(implant_id)
        entry, apex = (p, imp.apex_lps_mm) if end == "entry" else (imp.entry_lps_mm, p)
        message = ""
        item = imp.item
        if snap:
            if end == "entry":          # snap from the apex backwards, keeping the apex
                s = snap_length(self.catalogue, item.family, apex, entry)
                entry = s.apex_lps_mm
            else:
                s = snap_length(self.catalogue, item.family, entry, apex)
                apex = s.apex_lps_mm
            item, message = s.item, s.message
        new = Implant(imp.id, imp.side, item, entry, apex, imp.roll_deg, imp.level)
        return self._replace_implant(implant_id, new, f"move {implant_id} {end}"), message

    def set_length(self, implant_id: str, length_mm: float) -> tuple[Implant, str]:
        """Set the catalogue length (nearest item of the implant's family); the apex moves."""
        imp = self.implant(implant_id)
        s = snap_length(self.catalogue, imp.item.family, imp.entry_lps_mm, imp.apex_lps_mm, length_mm)
        self.check_inside(s.apex_lps_mm, "apex")
        new = Implant(imp.id, imp.side, s.item, imp.entry_lps_mm, s.apex_lps_mm, imp.roll_deg, imp.level)
        return self._replace_implant(implant_id, new, f"{implant_id} length {s.item.length_mm:g} mm"), s.message

    def set_item(self, implant_id: str, item_id: str) -> tuple[Implant, str]:
        """Set the catalogue item (family and length) by id; the apex moves to its length."""
        item = self.catalogue.item(item_id)
        imp = self.implant(implant_id)
        s = snap_length(self.catalogue, item.family, imp.entry_lps_mm, imp.apex_lps_mm, item.length_mm)
        self.check_inside(s.apex_lps_mm, "apex")
        new = Implant(imp.id, imp.side, s.item, imp.entry_lps_mm, s.apex_lps_mm, imp.roll_deg, imp.level)
        return self._replace_implant(implant_id, new, f"{implant_id} item {item_id}"), s.message

    def set_roll(self, implant_id: str, roll_deg: float) -> Implant:
        """Set the roll about the axis (degrees, wrapped to [0, 120): the triangle's symmetry)."""
        imp = self.implant(implant_id)
        check_finite(roll_deg, "roll_deg", "a finite number of degrees")
        new = dataclasses.replace(imp, roll_deg=float(roll_deg) % 120.0)
        return self._replace_implant(implant_id, new, f"{implant_id} roll {new.roll_deg:g} deg")

    def set_side(self, implant_id: str, side: str) -> Implant:
        imp = self.implant(implant_id)
        if side not in IMPLANT_SIDES:
            raise InputError(f"must be one of {', '.join(IMPLANT_SIDES)}, got {side!r}", "side")
        return self._replace_implant(implant_id, dataclasses.replace(imp, side=side), f"{implant_id} side {side}")

    def set_level(self, implant_id: str, level: str | None) -> Implant:
        imp = self.implant(implant_id)
        return self._replace_implant(implant_id, dataclasses.replace(imp, level=level or None),
                                     f"{implant_id} level {level}")

    def rename_implant(self, implant_id: str, new_id: str) -> Implant:
        """Change an implant's id (views naming it follow)."""
        imp = self.implant(implant_id)
        new_id = str(new_id).strip()
        if not new_id:
            raise InputError("must not be empty", "implant id")
        if new_id != implant_id and any(i.id == new_id for i in self._state.implants):
            raise InputError(f"id {new_id!r} is already used by another implant", "implant id")
        new = dataclasses.replace(imp, id=new_id)
        imps = tuple(new if i.id == implant_id else i for i in self._state.implants)
        views = tuple(dataclasses.replace(v, implant=new_id, name=v.name.replace(implant_id, new_id, 1))
                      if v.implant == implant_id else v for v in self._state.views)
        self._commit(f"rename {implant_id} to {new_id}", _State(imps, self._state.landmarks, views))
        return new

    def delete_implant(self, implant_id: str) -> None:
        """Remove an implant and the views centred on it."""
        self.implant(implant_id)
        imps = tuple(i for i in self._state.implants if i.id != implant_id)
        views = tuple(v for v in self._state.views if v.implant != implant_id)
        self._commit(f"delete implant {implant_id}", _State(imps, self._state.landmarks, views))

    def replace_implants(self, implants, description: str = "replace implants") -> None:
        """Replace all implants at once (e.g. by an assisted-planning proposal), one undo step."""
        imps = tuple(implants)
        ids = {i.id for i in imps}
        views = tuple(v for v in self._state.views if v.implant is None or v.implant in ids)
        self._commit(description, _State(imps, self._state.landmarks, views))

    # ------------------------------------------------------------------ landmarks
    def add_landmark(self, kind: str, position_lps_mm, *, side: str | None = None, name: str | None = None,
                     radius_mm: float | None = None) -> Landmark:
        """Add a landmark at a clicked point.

        ``side`` defaults to midline for the promontory, the canal and the endplate/body
        points, else the side of the midline the point lies on; ``radius_mm`` to
        :data:`DEFAULT_LANDMARK_RADIUS_MM`; ``name`` to ``"<kind> <side> <n>"``.
        """
        if kind not in LANDMARK_KINDS:
            raise InputError(f"must be one of {', '.join(LANDMARK_KINDS)}, got {kind!r}", "kind")
        p = self.check_inside(position_lps_mm, "landmark")
        if side is None:
            midline_kinds = ("sacral_promontory", "spinal_canal", "s1_endplate_posterior", "s2_anterior_body")
            side = "midline" if kind in midline_kinds else infer_side(p, self.midline_x_mm())
        radius = DEFAULT_LANDMARK_RADIUS_MM.get(kind, 0.0) if radius_mm is None else radius_mm
        if name is None:
            taken = {lm.name for lm in self._state.landmarks}
            n = 1
            while f"{kind} {side} {n}" in taken:
                n += 1
            name = f"{kind} {side} {n}"
        if any(lm.name == name for lm in self._state.landmarks):
            raise InputError(f"a landmark named {name!r} exists already", "landmark name")
        lm = Landmark(name, kind, side, p, radius)
        self._commit(f"add landmark {name}", dataclasses.replace(
            self._state, landmarks=self._state.landmarks + (lm,)))
        return lm

    def _landmark(self, name: str) -> Landmark:
        for lm in self._state.landmarks:
            if lm.name == name:
                return lm
        raise InputError(f"no landmark {name!r}", "landmark")

    def move_landmark(self, name: str, position_lps_mm) -> Landmark:
        lm = self._landmark(name)
        new = dataclasses.replace(lm, position_lps_mm=self.check_inside(position_lps_mm, "landmark"))
        lms = tuple(new if x.name == name else x for x in self._state.landmarks)
        self._commit(f"move landmark {name}", dataclasses.replace(self._state, landmarks=lms))
        return new

    def delete_landmark(self, name: str) -> None:
        self._landmark(name)
        lms = tuple(x for x in self._state.landmarks if x.name != name)
        self._commit(f"delete landmark {name}", dataclasses.replace(self._state, landmarks=lms))

    # ------------------------------------------------------------------ views
    def set_view_tilt(self, kind: str, tilt_deg: float | None) -> None:
        """Set (or clear, None = derive) the inlet or outlet tilt for every implant's view."""
        if kind not in ("inlet", "outlet"):
            raise InputError(f"must be 'inlet' or 'outlet', got {kind!r}", "kind")
        if tilt_deg is not None and not (isinstance(tilt_deg, (int, float, np.number)) and 0 <= tilt_deg < 90):
            raise InputError(f"must be a tilt in [0, 90) degrees, got {tilt_deg!r}", "tilt_deg")
        views = [v for v in self._state.views if v.kind != kind]
        t = None if tilt_deg is None else float(tilt_deg)
        views += [ViewSpec(f"{i.id} {kind}", kind, i.id, t) for i in self._state.implants]
        self._commit(f"{kind} tilt {'derived' if t is None else f'{t:g} deg'}",
                     dataclasses.replace(self._state, views=tuple(views)))

    # ------------------------------------------------------------------ save
    def save(self, path: str | os.PathLike) -> Path:
        """Save with :func:`save_plan_checked`, completing the views to the defaults per implant."""
        from or_assist.core.plan import default_views

        plan = self.plan
        have = {(v.implant, v.kind) for v in plan.views}
        tilts = {v.kind: v.tilt_deg for v in plan.views if v.tilt_deg is not None}
        plan.views = list(plan.views) + [dataclasses.replace(v, tilt_deg=tilts.get(v.kind))
                                         for v in default_views(plan)
                                         if (v.implant, v.kind) not in have and v.implant is not None]
        out = save_plan_checked(plan, path, self.ct_sha256)
        self.saved_state = self._state
        return out
