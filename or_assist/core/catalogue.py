"""The implant catalogue: the implant sizes a plan may use (``or_assist.catalogue/1``).

The packaged default (``or_assist/data/implant_catalogue.json``) describes generic
triangular titanium implants: 7.0 mm and 4.0 mm inscribed-diameter triangles, 30-90 mm
in 5 mm steps, over a 3.2 mm guide pin. The real-world catalogue is unverified: supply
your own file in the same schema (``load_catalogue(path)`` or the plan's ``"catalogue"``).

Examples
--------
>>> cat = load_catalogue()
>>> cat.item("T7-45").circumradius_mm
7.0
>>> cat.nearest_length("T7", 47.0).id
'T7-45'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from or_assist.core import jsonio
from or_assist.core.validate import check_finite
from or_assist.errors import InputError, SchemaError

__all__ = ["CATALOGUE_SCHEMA", "DEFAULT_CATALOGUE_PATH", "CatalogueItem", "Catalogue", "load_catalogue"]

CATALOGUE_SCHEMA = "or_assist.catalogue/1"
DEFAULT_CATALOGUE_PATH = Path(__file__).resolve().parents[1] / "data" / "implant_catalogue.json"


@dataclass(frozen=True)
class CatalogueItem:
    """One implant size: a triangular implant of one inscribed diameter and length.

    Attributes
    ----------
    id : str
        ``"<family prefix>-<length>"``, e.g. ``"T7-45"``.
    inscribed_diameter_mm : float
        Diameter of the circle inscribed in the triangular cross-section.
    length_mm : float
        Nominal length, entry to tip.
    tip_taper_mm : float
        Axial length of the tapered tip (0 = flat end).
    """

    id: str
    inscribed_diameter_mm: float
    length_mm: float
    tip_taper_mm: float

    @property
    def circumradius_mm(self) -> float:
        """Axis-to-vertex distance: ``2 * r_in = inscribed diameter`` for an equilateral triangle."""
        return float(self.inscribed_diameter_mm)

    @property
    def inscribed_radius_mm(self) -> float:
        """Axis-to-face distance, ``d / 2``."""
        return 0.5 * float(self.inscribed_diameter_mm)

    @property
    def family(self) -> str:
        """The family prefix, e.g. ``"T7"``."""
        return self.id.rsplit("-", 1)[0]


class Catalogue:
    """The implant sizes a plan may use.

    Parameters
    ----------
    items : dict of str to CatalogueItem
        By id.
    guide_pin_diameter_mm : float
        Diameter of the guide pin the implants go over.
    name, source : str
        Free text from the catalogue file.
    path : Path or None
        The file it was read from; ``None`` for the packaged default catalogue.
    """

    def __init__(self, items: dict[str, CatalogueItem], guide_pin_diameter_mm: float,
                 name: str = "", source: str = "", path: Path | None = None):
        self.items = dict(items)
        self.guide_pin_diameter_mm = float(guide_pin_diameter_mm)
        self.name = name
        self.source = source
        self.path = path

    def __repr__(self) -> str:
        return f"Catalogue({self.name!r}, {len(self.items)} items, path={self.path})"

    @property
    def families(self) -> dict[str, list[CatalogueItem]]:
        """Family prefix -> its items sorted by length."""
        out: dict[str, list[CatalogueItem]] = {}
        for it in self.items.values():
            out.setdefault(it.family, []).append(it)
        return {k: sorted(v, key=lambda i: i.length_mm) for k, v in out.items()}

    def item(self, item_id: str, where: str | None = None) -> CatalogueItem:
        """The item with this id; an :class:`InputError` listing the valid ids if unknown."""
        try:
            return self.items[item_id]
        except (KeyError, TypeError):
            raise InputError(f"unknown implant item {item_id!r}; valid ids: {', '.join(self.items)}",
                             where or "item") from None

    def nearest_length(self, family_prefix: str, length_mm: float) -> CatalogueItem:
        """The item of a family whose length is closest to ``length_mm`` (ties: the shorter).

        Parameters
        ----------
        family_prefix : str
            e.g. ``"T7"``.
        length_mm : float
            Wanted length, e.g. the entry-apex distance.

        Returns
        -------
        CatalogueItem
        """
        fams = self.families
        if family_prefix not in fams:
            raise InputError(f"unknown implant family {family_prefix!r}; valid: {', '.join(fams)}",
                             "family_prefix")
        check_finite(length_mm, "length_mm")
        return min(fams[family_prefix], key=lambda i: (abs(i.length_mm - length_mm), i.length_mm))

    def to_canonical(self) -> dict:
        """A content-only dict (no path or free text), used for :meth:`Plan.sha256`."""
        return {"guide_pin_diameter_mm": self.guide_pin_diameter_mm,
                "items": [[i.id, i.inscribed_diameter_mm, i.length_mm, i.tip_taper_mm]
                          for i in sorted(self.items.values(), key=lambda i: i.id)]}


def _length_label(length_mm: float) -> str:
    return f"{length_mm:g}"


def load_catalogue(path: str | os.PathLike | None = None) -> Catalogue:
    """Read an ``or_assist.catalogue/1`` file (the packaged default when ``path`` is None).

    Item ids are ``"<prefix>-<length>"`` for every family and length, e.g. ``"T7-45"``.

    Raises
    ------
    InputError, SchemaError
        Missing file; unknown schema; a missing or malformed field (named with its file).
    """
    file = DEFAULT_CATALOGUE_PATH if path is None else Path(path)
    where = str(file)
    doc = jsonio.read_json(file, CATALOGUE_SCHEMA)
    pin = jsonio.field_float(doc, "guide_pin_diameter_mm", where, positive=True)
    families = jsonio.field(doc, "families", where)
    if not isinstance(families, list) or not families:
        raise SchemaError("field 'families' must be a non-empty list", where)
    items: dict[str, CatalogueItem] = {}
    for k, fam in enumerate(families):
        fw = f"{where}: families[{k}]"
        if not isinstance(fam, dict):
            raise SchemaError("must be an object", fw)
        prefix = jsonio.field_str(fam, "prefix", fw)
        if not prefix or any(c.isspace() for c in prefix):
            raise SchemaError(f"field 'prefix' must be a non-empty word, got {prefix!r}", fw)
        diam = jsonio.field_float(fam, "inscribed_diameter_mm", fw, positive=True)
        taper = jsonio.field_float(fam, "tip_taper_mm", fw, default=0.0)
        lengths = jsonio.field_array(fam, "lengths_mm", fw, (None,))
        if lengths.size == 0 or np.any(lengths <= 0):
            raise SchemaError("field 'lengths_mm' must be a non-empty list of lengths > 0", fw)
        if taper < 0 or taper >= lengths.min():
            raise SchemaError(f"field 'tip_taper_mm' must be >= 0 and shorter than the shortest "
                              f"length ({lengths.min():g} mm), got {taper!r}", fw)
        for length in lengths:
            item_id = f"{prefix}-{_length_label(float(length))}"
            if item_id in items:
                raise SchemaError(f"duplicate item id {item_id!r}", fw)
            items[item_id] = CatalogueItem(item_id, diam, float(length), taper)
    return Catalogue(items, pin, name=str(doc.get("name", "")), source=str(doc.get("source", "")),
                     path=None if path is None else file)
