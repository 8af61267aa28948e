"""C-arm profiles: nominal geometry of common mobile C-arms (``calibration/profiles``).

A profile (``or_assist.carm_profile/1``) holds a nominal ``or_assist.geometry/1`` at the
detector's native pixel grid plus what a clinical engineer needs to know about the
device (detector type, field shape and size, typical video output, sources, which
values are unverified). It is a starting point: ``or-assist calibrate`` replaces it
with a measured geometry for the real C-arm and grabber.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from or_assist.core import jsonio
from or_assist.core.geometry import CArmGeometry
from or_assist.errors import InputError, SchemaError

__all__ = ["CArmProfile", "PROFILE_SCHEMA", "PROFILE_DIR", "list_profiles", "load_profile"]

PROFILE_SCHEMA = "or_assist.carm_profile/1"
PROFILE_DIR = Path(__file__).resolve().parents[2] / "calibration" / "profiles"


@dataclass(frozen=True)
class CArmProfile:
    """A C-arm model's nominal geometry and facts (see the module docstring)."""

    name: str
    display_name: str
    detector_type: str
    field_shape: str
    field_size_mm: float
    needs_dewarping: bool
    geometry: CArmGeometry
    typical_video: dict
    sources: tuple[str, ...]
    unverified: tuple[str, ...]

    def geometry_at(self, size_px: int) -> CArmGeometry:
        """The nominal geometry resampled to a square ``size_px`` image of the whole field.

        Parameters
        ----------
        size_px : int
            Width and height of the image (e.g. 256 for registration, 1024 for display).
        """
        if isinstance(size_px, bool) or not isinstance(size_px, int) or size_px < 8:
            raise InputError(f"must be an integer >= 8, got {size_px!r}", "size_px")
        return self.geometry.resampled(size_px, size_px)


def list_profiles(directory: str | os.PathLike | None = None) -> list[str]:
    """Names of the profiles in ``directory`` (default ``calibration/profiles``)."""
    d = Path(directory) if directory else PROFILE_DIR
    return sorted(p.stem for p in d.glob("*.json"))


def load_profile(name_or_path: str | os.PathLike) -> CArmProfile:
    """Load a profile by name (from ``calibration/profiles``) or from a file path.

    Raises
    ------
    InputError
        Unknown name (the message lists the known ones) or unreadable file.
    SchemaError
        A missing or malformed field, naming the file and field.
    """
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = PROFILE_DIR / f"{name_or_path}.json"
        if not path.is_file():
            known = ", ".join(list_profiles()) or "(none found)"
            raise InputError(f"unknown C-arm profile; known profiles: {known}", str(name_or_path))
    where = str(path)
    doc = jsonio.read_json(path, PROFILE_SCHEMA)
    geom = CArmGeometry.from_dict(jsonio.field(doc, "geometry", where), f"{where}: geometry")
    shape = jsonio.field_str(doc, "field_shape", where, choices=("circular", "square"))
    kind = jsonio.field_str(doc, "detector_type", where, choices=("flat_panel", "image_intensifier"))
    sources = jsonio.field(doc, "sources", where)
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
        raise SchemaError("field 'sources' must be a non-empty list of strings", where)
    unverified = jsonio.field(doc, "unverified", where, [])
    video = jsonio.field(doc, "typical_video", where, {})
    if not isinstance(video, dict):
        raise SchemaError("field 'typical_video' must be an object", where)
    return CArmProfile(
        name=jsonio.field_str(doc, "name", where),
        display_name=jsonio.field_str(doc, "display_name", where),
        detector_type=kind, field_shape=shape,
        field_size_mm=jsonio.field_float(doc, "field_size_mm", where, positive=True),
        needs_dewarping=jsonio.field_bool(doc, "needs_dewarping", where),
        geometry=geom, typical_video=video, sources=tuple(sources), unverified=tuple(unverified))
