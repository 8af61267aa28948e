"""Saving, loading and checking the virtual view library; building it from files.

On disk a library is a folder::

    <out>/views.npz        one file per plan (numpy, compressed)
    <out>/png/<view>.png   each named view with the planned outlines, for printing

``views.npz`` holds ``metadata`` (a JSON string, schema ``or_assist.view_library/1``:
plan SHA-256 and implants, the ``or_assist.geometry/1`` document, renderer and display
settings, patient position and axes, neighbourhood offsets, and per entry its name,
implant, kind, offsets, C-arm angles, isocentre, binning, image slot, PNG and outlines),
``poses`` ((N, 4, 4) float64, ``T_source_from_patient`` per entry) and, per binning
``f``, ``line_integrals_ds<f>`` ((M, H, W) float16) and ``display_ds<f>`` ((M, H, W)
uint8) with the images of the entries of that binning, in entry order.

:func:`load_view_library` refuses a library built for another plan (any change of the
plan's content changes its SHA-256) or another C-arm geometry, naming what differs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
import zipfile
from pathlib import Path

import numpy as np

from or_assist.core import jsonio
from or_assist.core.carm import CArmAngles
from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose
from or_assist.core.outputs import remove_quietly, write_error, write_image
from or_assist.errors import InputError, SchemaError
from or_assist.render.display import DisplaySettings
from or_assist.render.views.build import build_view_library
from or_assist.render.views.model import (DEFAULT_NEIGHBOURHOOD_DEG, VIEW_LIBRARY_SCHEMA, ViewEntry,
    ViewLibrary)

__all__ = ["LIBRARY_FILE", "PNG_DIR", "save_view_library", "load_view_library", "check_view_library",
           "ViewFiles", "build_view_files"]

LIBRARY_FILE = "views.npz"
PNG_DIR = "png"


# --------------------------------------------------------------------------- save


def _png_name(name: str, taken: set) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "view"
    out, n = base, 2
    while out in taken:
        out, n = f"{base}_{n}", n + 1
    taken.add(out)
    return f"{PNG_DIR}/{out}.png"


def _outline_doc(o) -> dict:
    return {"id": o.id, "silhouette_px": o.silhouette_px.tolist(), "entry_px": o.entry_px.tolist(),
            "apex_px": o.apex_px.tolist(), "entry_depth_mm": o.entry_depth_mm, "apex_depth_mm": o.apex_depth_mm}


def save_view_library(library: ViewLibrary, out_dir: str | os.PathLike, *, png: bool = True) -> dict:
    """Write ``<out_dir>/views.npz`` and (``png``) a PNG per named view (module doc).

    Returns
    -------
    dict
        ``{"library": Path, "png": [Path, ...]}``.
    """

    from or_assist.render.views.png import render_view_png

    if not isinstance(library, ViewLibrary):
        raise InputError(f"expected a ViewLibrary, got {type(library).__name__}", "library")
    out = Path(out_dir)
    try:
        (out / PNG_DIR if png else out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(out, exc, "the output folder") from None
    arrays: dict[str, np.ndarray] = {"poses": np.stack([e.pose.matrix for e in library.entries])}
    slots: dict[int, list[int]] = {}
    taken: set = set()
    entries, png_paths = [], []
    for i, e in enumerate(library.entries):
        slot = slots.setdefault(e.downsample, [])
        slot.append(i)
        png_rel = _png_name(e.name, taken) if (png and e.is_named) else None
        entries.append({"name": e.name, "implant": e.implant_id, "kind": e.kind, "parent": e.parent,
                        "offset_deg": list(e.offset_deg),
                        "angles": {"orbital_deg": e.angles.orbital_deg, "tilt_deg": e.angles.tilt_deg},
                        "isocenter_lps_mm": e.isocenter_lps_mm.tolist(), "downsample": e.downsample,
                        "image": {"key": f"ds{e.downsample}", "index": len(slot) - 1}, "png": png_rel,
                        "outlines": [_outline_doc(o) for o in e.outlines]})
        if png_rel is not None:
            path = out / png_rel
            write_image(path, render_view_png(library, i), what="the view PNG")
            png_paths.append(path)
    for f, idx in slots.items():
        arrays[f"line_integrals_ds{f}"] = np.stack([library.line_integrals[i] for i in idx]).astype(np.float16)
        arrays[f"display_ds{f}"] = np.stack([library.display[i] for i in idx]).astype(np.uint8)
    meta = {
        "schema": VIEW_LIBRARY_SCHEMA, "or_assist_version": library.or_assist_version,
        "plan": {"sha256": library.plan_sha256, "source": library.plan_source, "implants": library.plan_implants},
        "geometry": library.geometry.to_dict(), "renderer": library.renderer,
        "display_settings": dataclasses.asdict(library.display_settings),
        "patient_position": library.patient_position, "patient_axes": library.patient_axes.tolist(),
        "neighbourhood_deg": list(library.neighbourhood_deg), "entries": entries,
    }
    arrays["metadata"] = np.array(json.dumps(meta, allow_nan=False))
    path = out / LIBRARY_FILE
    tmp = out / (LIBRARY_FILE + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.replace(tmp, path)
    except OSError as exc:
        remove_quietly(tmp)
        raise write_error(path, exc, "the view library") from None
    except BaseException:
        remove_quietly(tmp)
        raise
    return {"library": path, "png": png_paths}


# --------------------------------------------------------------------------- load


def _array(data, key: str, where: str, dtype, ndim: int) -> np.ndarray:
    if key not in data.files:
        raise SchemaError(f"missing array '{key}'", where)
    arr = data[key]
    if arr.dtype != dtype or arr.ndim != ndim:
        raise SchemaError(f"array '{key}' must be {ndim}-d {np.dtype(dtype)}, got {arr.ndim}-d {arr.dtype}", where)
    return arr


def _outline(doc: dict, where: str):
    from or_assist.render.outline import ImplantOutline

    return ImplantOutline(jsonio.field_str(doc, "id", where),
                          jsonio.field_array(doc, "silhouette_px", where, (None, 2)),
                          jsonio.field_array(doc, "entry_px", where, (2,)),
                          jsonio.field_array(doc, "apex_px", where, (2,)),
                          jsonio.field_float(doc, "entry_depth_mm", where),
                          jsonio.field_float(doc, "apex_depth_mm", where))


def _read(path: Path) -> ViewLibrary:
    try:
        return _read_unchecked(path)
    except (TypeError, KeyError, AttributeError, IndexError, OverflowError) as exc:
        # a metadata value of the wrong kind (a number where an object is expected, ...)
        raise SchemaError(f"malformed metadata ({type(exc).__name__}: {str(exc)[:160]})", str(path)) from None


def _metadata(data, where: str) -> dict:
    arr = data["metadata"]
    if arr.dtype.kind != "U" or arr.size != 1:
        raise SchemaError(f"array 'metadata' must be one JSON string, got {arr.ndim}-d {arr.dtype} "
                          f"of {arr.size} element(s)", where)
    return jsonio.loads_json(str(arr.reshape(())), f"{where}: metadata")


def _read_unchecked(path: Path) -> ViewLibrary:
    where = str(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "metadata" not in data.files:
                raise SchemaError("not an or_assist view library (no 'metadata' array)", where)
            meta = _metadata(data, where)
            jsonio.check_schema(meta, VIEW_LIBRARY_SCHEMA, where)
            docs = jsonio.field(meta, "entries", where)
            if not isinstance(docs, list) or not docs or not all(isinstance(d, dict) for d in docs):
                raise SchemaError("field 'entries' must be a non-empty list of objects", where)
            poses = _array(data, "poses", where, np.float64, 3)
            if poses.shape != (len(docs), 4, 4):
                raise SchemaError(f"array 'poses' must have shape ({len(docs)}, 4, 4), got {poses.shape}", where)
            groups = {}
            for key in {d.get("image", {}).get("key") if isinstance(d.get("image"), dict) else None for d in docs}:
                if not isinstance(key, str):
                    raise SchemaError("every entry needs field 'image' {key, index}", where)
                groups[key] = (_array(data, f"line_integrals_{key}", where, np.float16, 3),
                               _array(data, f"display_{key}", where, np.uint8, 3))
            entries, li, disp = [], [], []
            for k, d in enumerate(docs):
                ew = f"{where}: entries[{k}]"
                img = d["image"]
                group = groups[img["key"]]
                idx = img.get("index")
                if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < len(group[0]) \
                        or group[1].shape != group[0].shape:
                    raise SchemaError(f"field 'image' points at no stored image ({img})", ew)
                angles = jsonio.field(d, "angles", ew)
                offset = jsonio.field_array(d, "offset_deg", ew, (2,))
                entries.append(ViewEntry(
                    jsonio.field_str(d, "name", ew), jsonio.field_str(d, "implant", ew),
                    jsonio.field_str(d, "kind", ew), jsonio.field_str(d, "parent", ew),
                    (float(offset[0]), float(offset[1])), Pose.from_dict({"T_source_from_patient": poses[k]}, ew),
                    CArmAngles(jsonio.field_float(angles, "orbital_deg", ew), jsonio.field_float(angles, "tilt_deg", ew)),
                    jsonio.field_array(d, "isocenter_lps_mm", ew, (3,)), int(jsonio.field_float(d, "downsample", ew)),
                    tuple(_outline(o, f"{ew}: outlines") for o in jsonio.field(d, "outlines", ew, []))))
                li.append(group[0][idx])
                disp.append(group[1][idx])
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"cannot read as a view library (.npz): {exc}", where) from None
    plan = jsonio.field(meta, "plan", where)
    settings = dict(jsonio.field(meta, "display_settings", where))
    for key in ("window", "percentiles"):
        if settings.get(key) is not None:
            settings[key] = tuple(settings[key])
    lib = ViewLibrary(entries, li, disp, CArmGeometry.from_dict(jsonio.field(meta, "geometry", where),
                                                                f"{where}: geometry"),
                      jsonio.field_str(plan, "sha256", f"{where}: plan"), plan.get("source"),
                      jsonio.field(plan, "implants", f"{where}: plan"), jsonio.field(meta, "renderer", where),
                      DisplaySettings(**settings), jsonio.field_str(meta, "patient_position", where),
                      jsonio.field_array(meta, "patient_axes", where, (3, 3)),
                      tuple(jsonio.field(meta, "neighbourhood_deg", where)),
                      jsonio.field_str(meta, "or_assist_version", where))
    for k, entry in enumerate(lib.entries):
        g = lib.geometry_of(entry)
        if lib.line_integrals[k].shape != (g.height, g.width):
            raise SchemaError(f"entries[{k}]: stored image is {lib.line_integrals[k].shape[1]} x "
                              f"{lib.line_integrals[k].shape[0]} px, its geometry says {g.width} x {g.height}", where)
    return lib


def _plan_difference(stored: list, current: list) -> str:
    old = {d["id"]: d for d in stored}
    new = {d["id"]: d for d in current}
    parts = [f"implant {i!r} removed" for i in old if i not in new]
    parts += [f"implant {i!r} added" for i in new if i not in old]
    for i in old:
        if i in new:
            changed = [k for k in sorted(set(old[i]) | set(new[i])) if old[i].get(k) != new[i].get(k)]
            if changed:
                parts.append(f"implant {i!r} changed ({', '.join(changed)})")
    return "; ".join(parts) if parts else "the implants are the same, so its CT, landmarks, views or catalogue changed"


def check_view_library(library: ViewLibrary, plan=None, geometry: CArmGeometry | None = None,
                       where: str = "view library") -> None:
    """Raise an :class:`InputError` naming what differs when ``library`` was not built
    for ``plan`` (by SHA-256) or ``geometry`` (field by field); None skips a check."""
    from or_assist.core.plan import Plan, plan_to_dict

    if plan is not None:
        if not isinstance(plan, Plan):
            raise InputError(f"expected a Plan, got {type(plan).__name__}", "plan")
        sha = plan.sha256()
        if sha != library.plan_sha256:
            raise InputError(
                f"does not match the plan {plan.source or '(in memory)'}: it was built for plan SHA-256 "
                f"{library.plan_sha256[:12]}..., the plan has {sha[:12]}... "
                f"({_plan_difference(library.plan_implants, plan_to_dict(plan)['implants'])}); "
                "rebuild it with `or-assist views`", where)
    if geometry is not None:
        if not isinstance(geometry, CArmGeometry):
            raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")
        a, b = library.geometry.to_dict(), geometry.to_dict()
        diff = [f"{k} {a[k]} in the library, {b[k]} given" for k in a if a[k] != b.get(k)]
        if diff:
            raise InputError(f"does not match the C-arm geometry: {'; '.join(diff)}; rebuild it with "
                             "`or-assist views` for this geometry", where)


def load_view_library(path: str | os.PathLike, plan=None, geometry: CArmGeometry | None = None) -> ViewLibrary:
    """Read a view library and check it against a plan and a geometry.

    Parameters
    ----------
    path : path-like
        The ``views.npz`` file or the folder holding it.
    plan : Plan, optional
        Refuse the library unless built for this plan (SHA-256 of its content).
    geometry : CArmGeometry, optional
        Refuse the library unless built for this geometry.

    Raises
    ------
    InputError
        Missing or unreadable file, or a plan / geometry mismatch (naming what differs).
    SchemaError
        Not a view library, an unknown schema, or a missing or malformed field.
    """
    p = Path(path)
    if p.is_dir():
        p = p / LIBRARY_FILE
    if not p.is_file():
        raise InputError("view library not found (expected a views.npz file or its folder)", str(p))
    library = _read(p)
    check_view_library(library, plan, geometry, str(p))
    return library


@dataclasses.dataclass(frozen=True)
class ViewFiles:
    """A view library built from files and saved (``or-assist views``).

    Attributes
    ----------
    library : Path
        The ``views.npz`` written.
    png : list of Path
        The PNG of each named view (empty when not asked for).
    views, named_views : int
        Views in the library, and how many of them are named views (the rest are the
        neighbourhood).
    seconds : float
        Time to build and save.
    size_mb : float
        Size of ``views.npz``.
    """

    library: Path
    png: list[Path]
    views: int
    named_views: int
    seconds: float
    size_mb: float


def build_view_files(plan_path: str | os.PathLike, geometry_path: str | os.PathLike, out_dir: str | os.PathLike,
                     *, size_px: int | None = None, neighbourhood_deg=DEFAULT_NEIGHBOURHOOD_DEG,
                     patient_position: str = "prone", png: bool = True, progress=None) -> ViewFiles:
    """Build the view library of a plan file for a geometry file and save it in ``out_dir``.

    Parameters
    ----------
    plan_path, geometry_path : path-like
        ``or_assist.plan/1`` and ``or_assist.geometry/1`` files.
    out_dir : path-like
        Folder for ``views.npz`` and the PNGs.
    size_px, neighbourhood_deg, patient_position
        As for :func:`~or_assist.render.views.build.build_view_library`.
    png : bool
        Also write a PNG of each named view.
    progress : callable, optional
        ``progress(done, total, name)`` after each view.

    Returns
    -------
    ViewFiles
    """
    from or_assist.core.geometry import load_geometry
    from or_assist.core.plan import load_plan

    started = time.perf_counter()
    plan = load_plan(plan_path)
    geometry = load_geometry(geometry_path)
    library = build_view_library(plan, geometry, size_px=size_px, neighbourhood_deg=neighbourhood_deg,
                                 patient_position=patient_position, progress=progress)
    paths = save_view_library(library, out_dir, png=png)
    seconds = time.perf_counter() - started
    return ViewFiles(paths["library"], list(paths["png"]), len(library), len(library.named_entries()), seconds,
                     paths["library"].stat().st_size / 1e6)
