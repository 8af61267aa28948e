"""Exporting a case for use outside the OR: text-masked images, optional pseudonymisation.

:func:`export_case` writes ``out_dir/case.json`` (``or_assist.case_export/1``: case
metadata, shots, captures, events) and ``out_dir/images/*.png``. By default every
exported image has its burnt-in text (which may show the patient's name) filled black:
the mask recorded with the image, else the recorded mask of the same size from its shot
(an overlay drawn on the raw or preprocessed frame), else one detected now
(:func:`or_assist.video.preprocess.masks.detect_text_mask`). With ``pseudonymise`` the
patient label, operator, file paths, the case id (which contains the start time) and all
dates are removed: times become seconds from the start of the case, free-text event
notes (``detail["text"]``) are dropped.

The report (:mod:`or_assist.session.report`) uses the same image and metadata rules.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from or_assist.core.outputs import write_errors
from or_assist.errors import InputError
from or_assist.session.caselog import FOLDER_MODE, CaseLog
from or_assist.session.images import apply_text_mask, encode_png, read_png, write_file_atomic

__all__ = ["EXPORT_SCHEMA", "shown_image", "pseudonymise_summary", "export_case"]

EXPORT_SCHEMA = "or_assist.case_export/1"


def _detect_text(image: np.ndarray) -> np.ndarray | None:
    from or_assist.video.preprocess.masks import detect_text_mask

    gray = image if image.ndim == 2 else image.mean(axis=2).astype(image.dtype)
    if gray.dtype == np.uint16:
        gray = (gray >> 8).astype(np.uint8)
    return detect_text_mask(gray)


def shown_image(log: CaseLog, path: Path, sha256: str | None, mask_paths=(), *,
                mask_text: bool = True) -> tuple[np.ndarray, str]:
    """An image of the case as it may leave the OR, and how its text was treated.

    Parameters
    ----------
    log : CaseLog
    path : Path
        The image file.
    sha256 : str or None
        Its recorded checksum (checked when given).
    mask_paths : sequence of Path or None
        Recorded text masks to try in order; the first with the image's size is used.
    mask_text : bool
        False returns the image unmasked.

    Returns
    -------
    image : ndarray
        uint8/uint16, grey or BGR, text filled black when masked.
    note : str
        ``"text masked (recorded mask)"``, ``"text masked (detected)"`` or ``"not masked"``.

    Raises
    ------
    InputError
        The image file is missing, damaged or undecodable (the message names it).
    """
    image = log.read_image(path, sha256)
    if not mask_text:
        return image, "not masked"
    for mp in mask_paths:
        if mp is None or not Path(mp).is_file():
            continue
        mask = read_png(Path(mp))
        if mask.shape[:2] == image.shape[:2]:
            return apply_text_mask(image, mask > 0), "text masked (recorded mask)"
    return apply_text_mask(image, _detect_text(image)), "text masked (detected)"


def pseudonymise_summary(summary: dict) -> dict:
    """A copy of :meth:`CaseLog.case_summary` without names, paths, case id and dates.

    ``started``/``ended`` are replaced by ``duration_s``; ``case_id`` by a random pseudonym.
    """
    s = copy.deepcopy(summary)
    duration = None if s.get("ended") is None else float(s["ended"]) - float(s["started"])
    for key in ("patient_label", "operator", "plan_path", "folder", "started", "ended"):
        s[key] = None
    s["duration_s"] = duration
    s["case_id"] = "case-" + hashlib.sha256(os.urandom(16)).hexdigest()[:10]
    plan = s.get("plan")
    if isinstance(plan, dict):
        if isinstance(plan.get("ct"), dict):
            plan["ct"]["path"] = None
        plan["catalogue"] = None
    s["problems"] = [p.replace(summary.get("folder") or "\0", "<case>") for p in s.get("problems", [])]
    return s


def _rel_time(t: float, start: float, pseudonymise: bool) -> dict:
    return {"t_s": round(float(t) - float(start), 3)} if pseudonymise else {"timestamp": t, "t_s": round(t - start, 3)}


def export_case(case_dir, out_dir, *, pseudonymise: bool = False, mask_text: bool = True) -> Path:
    """Export a case to a new folder (module doc).

    Parameters
    ----------
    case_dir : path-like
        The case folder.
    out_dir : path-like
        A new or empty folder; created ``0o700``.
    pseudonymise : bool
        Strip names, paths and dates from the metadata.
    mask_text : bool
        Fill burnt-in text black in every exported image (default).

    Returns
    -------
    Path
        ``out_dir/case.json``.

    Raises
    ------
    InputError
        The case cannot be opened, or ``out_dir`` exists and is not an empty folder. An
        image that is missing or damaged does not stop the export: it is listed under
        ``problems`` and its entry has ``"image": null``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError("exists and is not an empty folder (an export never overwrites)", str(out_dir))
    with CaseLog.open(case_dir, readonly=True) as log:
        summary = log.case_summary()
        shots, captures, events = log.shots(), log.captures(), log.events()
        start = summary["started"]
        with write_errors(out_dir, "the export folder"):
            (out_dir / "images").mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
            os.chmod(out_dir, FOLDER_MODE)
            os.chmod(out_dir / "images", FOLDER_MODE)
        meta = pseudonymise_summary(summary) if pseudonymise else dict(summary)
        problems = meta["problems"]

        def put(name, path, sha, masks):
            if path is None:
                return None, None
            try:
                image, note = shown_image(log, path, sha, masks, mask_text=mask_text)
            except InputError as exc:
                problems.append(str(exc).replace(str(log.case_dir), "<case>") if pseudonymise else str(exc))
                return None, None
            with write_errors(out_dir / "images" / name, "the exported image"):
                write_file_atomic(out_dir / "images" / name, encode_png(image, name), sync_dir=False)
            return f"images/{name}", note

        shot_rows, by_id = [], {s["id"]: s for s in shots}
        for s in shots:
            raw, raw_note = put(f"shot_{s['id']:06d}_raw.png", s["raw_path"], s["raw_sha256"], [s["raw_mask_path"]])
            pre, pre_note = put(f"shot_{s['id']:06d}_pre.png", s["pre_path"], s["pre_sha256"], [s["pre_mask_path"]])
            shot_rows.append({"id": s["id"], **_rel_time(s["timestamp"], start, pseudonymise),
                              "implant_id": s["implant_id"], "view": s["view"], "registration": s["registration"],
                              "guidance": s["guidance"],
                              "image": raw, "image_text": raw_note, "preprocessed": pre, "preprocessed_text": pre_note})
        capture_rows = []
        for c in captures:
            shot = by_id.get(c["shot_id"], {})
            masks = [c["overlay_mask_path"], shot.get("pre_mask_path"), shot.get("raw_mask_path")]
            img, note = put(f"capture_{c['id']:06d}.png", c["overlay_path"], c["overlay_sha256"], masks)
            capture_rows.append({"id": c["id"], "shot_id": c["shot_id"], **_rel_time(c["timestamp"], start, pseudonymise),
                                 "implant_id": c["implant_id"], "view": c["view"], "deviations": c["deviations"],
                                 "cue": c["cue"], "image": img, "image_text": note})
        event_rows = []
        for e in events:
            detail = e["detail"]
            if pseudonymise and isinstance(detail, dict):
                detail = {k: v for k, v in detail.items() if k != "text"}
            event_rows.append({"id": e["id"], **_rel_time(e["timestamp"], start, pseudonymise), "kind": e["kind"],
                               "detail": detail})
    doc = {"schema": EXPORT_SCHEMA, "pseudonymised": bool(pseudonymise), "text_masked": bool(mask_text),
           "case": meta, "shots": shot_rows, "captures": capture_rows, "events": event_rows}
    path = out_dir / "case.json"
    with write_errors(path, "the exported case"):
        write_file_atomic(path, json.dumps(doc, indent=2, allow_nan=True).encode("utf-8"))
    return path
