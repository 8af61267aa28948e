"""A bad-input corpus for every ``or-assist`` command, generated at test time.

:func:`build_base` writes small valid inputs from the built-in sample data (the phantom
CT, its plan, a 128-px C-arm geometry, a pose, a simulated shot, a case folder);
:func:`build_variants` damages them in the ways users' files are damaged (missing,
empty, binary, truncated, deeply nested or huge-number JSON, every field of the
geometry, pose and plan removed or given a wrong value, truncated and header-damaged
CTs, undecodable images, damaged case databases, outputs that cannot be written) and
:data:`CASES` lists the command lines that feed each one to a command.

Each case says what must happen: ``"error"`` (exit 2 and one line ``or-assist: error:
...``) or ``"clean"`` (a valid variant, e.g. an optional field removed: any exit status
0, 1 or 2, and if 2 then one line). No case may raise, print a traceback or hang.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tests.conftest import REAL_CT_DIR, REPO_ROOT

PER_CASE_LIMIT_S = 120.0   # a hang, not a speed bound: most cases end in milliseconds

# ----------------------------------------------------------------------------- inputs

GEOMETRY_REQUIRED = ("image_size", "sid_mm", "pixel_spacing_mm", "principal_point_px", "source_to_isocenter_mm")
IMPLANT_REQUIRED = ("id", "item", "entry_lps_mm", "apex_lps_mm")
# Values that no numeric field may hold. ``"__INF__"`` and ``"__BIGINT__"`` are written
# as raw JSON text (1e400 parses to inf; a 400-digit integer overflows a float).
BAD_NUMBERS = {"null": None, "text": "x", "list": [], "object": {}, "nan": float("nan"),
               "inf": "__INF__", "bigint": "__BIGINT__", "negative": -1.0, "zero": 0.0}


def _dump(doc) -> str:
    text = json.dumps(doc, indent=1)
    return text.replace('"__INF__"', "1e400").replace('"__BIGINT__"', "1" + "0" * 400)


def build_base(root: Path) -> dict[str, Path]:
    """Valid inputs for every command, under ``root`` (about 10 s)."""
    from or_assist.core.carm_profiles import load_profile
    from or_assist.core.ct.load import load_ct
    from or_assist.core.geometry import save_geometry
    from or_assist.core.pose import save_pose
    from or_assist.core.plan import load_plan
    from or_assist.core.view_poses import plan_view_pose
    from or_assist.sim.shots.simulate import simulate_shot
    from or_assist.sim.shots.settings import ShotSettings
    from or_assist.sim.sample import build_sample_data
    from or_assist.session.caselog import CaseLog

    import cv2

    root.mkdir(parents=True, exist_ok=True)
    paths = {k: Path(v) for k, v in build_sample_data(root / "sample").items()}
    geometry = load_profile("siemens_cios_fusion").geometry_at(128)
    paths["geometry"] = save_geometry(geometry, root / "g128.json") or root / "g128.json"
    plan = load_plan(paths["plan"])
    paths["implant"] = plan.implants[0].id
    pose = plan_view_pose(plan, plan.implants[0].id, "lateral", geometry_path=paths["geometry"])
    save_pose(pose, root / "pose.json")
    paths["pose"] = root / "pose.json"
    ct = load_ct(paths["ct"])
    shot = simulate_shot(ct, pose, geometry, settings=ShotSettings(seed=1))
    cv2.imwrite(str(root / "shot.png"), shot.frame)
    paths["shot"] = root / "shot.png"
    cases = root / "cases"
    with CaseLog.create(cases, plan=plan, geometry=geometry) as log:
        log.log_shot(shot.frame)
        paths["case"] = log.case_dir
    paths["cases"] = cases
    return paths


def _json_variants(valid: Path, out: Path, name: str) -> dict[str, tuple[Path, str]]:
    """Whole-file damage of one JSON file: ``{variant: (path, expectation)}``."""
    text = valid.read_text()
    raw = {
        "missing": None,
        "empty": b"",
        "binary": bytes(range(256)) * 4,
        "not_json": b"hello, this is not JSON\n",
        "truncated": text[: len(text) // 2].encode(),
        "array": b"[]",
        "null": b"null",
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "deep_object": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        "bigint_top": b'{"schema": 1' + b"0" * 5000 + b"}",
        "latin1": text.replace('"schema"', '"sch\u00e9ma"').encode("latin-1"),
    }
    doc = json.loads(text)
    raw["wrong_schema"] = _dump({**doc, "schema": "or_assist.other/1"}).encode()
    raw["no_schema"] = _dump({k: v for k, v in doc.items() if k != "schema"}).encode()
    result = {}
    for key, data in raw.items():
        path = out / f"{name}_{key}.json"
        if data is not None:
            path.write_bytes(data)
        result[key] = (path, "error")
    folder = out / f"{name}_folder.json"
    folder.mkdir()
    result["folder"] = (folder, "error")
    return result


def _field_variants(valid: Path, out: Path, name: str, fields, required) -> dict[str, tuple[Path, str]]:
    """Each top-level field removed or given each bad value."""
    doc = json.loads(valid.read_text())
    result = {}
    for field in fields:
        variants = {"removed": {k: v for k, v in doc.items() if k != field}}
        for bad, value in BAD_NUMBERS.items():
            variants[bad] = {**doc, field: value}
        for bad, d in variants.items():
            path = out / f"{name}_{field}_{bad}.json"
            path.write_text(_dump(d))
            must_fail = field in required or bad not in ("removed", "null")
            result[f"{field}-{bad}"] = (path, "error" if must_fail else "clean")
    return result


def _plan_variants(valid: Path, out: Path) -> dict[str, tuple[Path, str]]:
    doc = json.loads(valid.read_text())
    ct_path = (valid.parent / doc["ct"]["path"]).resolve()
    doc["ct"]["path"] = str(ct_path)   # the variants live elsewhere
    result = {}

    def put(key, d, expect):
        path = out / f"plan_{key}.json"
        path.write_text(_dump(d))
        result[key] = (path, expect)

    put("valid", doc, "clean")
    for field in ("ct", "implants", "landmarks", "views", "catalogue"):
        put(f"{field}-removed", {k: v for k, v in doc.items() if k != field},
            "error" if field in ("ct", "implants") else "clean")
        for bad in ("text", "nan", "bigint", "object" if field != "ct" else "list"):
            put(f"{field}-{bad}", {**doc, field: BAD_NUMBERS[bad]}, "error")
    for field in IMPLANT_REQUIRED + ("roll_deg", "side", "level"):
        for bad, value in BAD_NUMBERS.items():
            if field in ("side", "level") and bad in ("null",):
                continue
            imp = {**doc["implants"][0], field: value}
            valid = (field == "roll_deg" and bad in ("negative", "zero")) or (field == "level" and bad == "text") \
                or (field not in IMPLANT_REQUIRED and bad == "null")
            put(f"implant-{field}-{bad}", {**doc, "implants": [imp] + doc["implants"][1:]},
                "clean" if valid else "error")
        imp = {k: v for k, v in doc["implants"][0].items() if k != field}
        put(f"implant-{field}-removed", {**doc, "implants": [imp] + doc["implants"][1:]},
            "error" if field in IMPLANT_REQUIRED else "clean")
    put("implant-entry-equals-apex", {**doc, "implants": [{**doc["implants"][0],
                                                            "apex_lps_mm": doc["implants"][0]["entry_lps_mm"]}]},
        "error")
    put("implant-two-coords", {**doc, "implants": [{**doc["implants"][0], "entry_lps_mm": [1.0, 2.0]}]}, "error")
    put("implants-duplicate-id", {**doc, "implants": [doc["implants"][0], doc["implants"][0]]}, "error")
    # Valid as a plan (a view pose needs no CT); the commands that read the CT refuse them.
    put("ct-path-missing", {**doc, "ct": {**doc["ct"], "path": str(out / "no_such_ct.nii.gz")}}, "clean")
    put("ct-sha-wrong", {**doc, "ct": {**doc["ct"], "sha256": "0" * 64}}, "clean")
    return result


def _ct_variants(ct: Path, out: Path) -> dict[str, tuple[Path, str]]:
    import SimpleITK as sitk

    data = ct.read_bytes()
    result = {}

    def put(key, payload, suffix=".nii.gz"):
        path = out / f"ct_{key}{suffix}"
        path.write_bytes(payload)
        result[key] = (path, "error")

    result["missing"] = (out / "ct_missing.nii.gz", "error")
    put("empty", b"")
    put("garbage", bytes(range(256)) * 64)
    put("text", b"not a CT\n", ".nii")
    put("truncated_half", data[: len(data) // 2])
    put("truncated_end", data[:-100])
    raw = gzip.decompress(data)
    put("truncated_raw", raw[: len(raw) * 2 // 3], ".nii")
    put("bad_gzip_crc", data[:-8] + bytes(4) + data[-4:])
    # Header damage of an uncompressed NIfTI (pixdim at byte 76: dim-info then 7 floats).
    image = sitk.ReadImage(str(ct))
    small = sitk.RegionOfInterest(image, [16, 16, 8], [0, 0, 0])
    small_path = out / "ct_small.nii"
    sitk.WriteImage(small, str(small_path))
    header = bytearray(small_path.read_bytes())
    for key, value in (("pixdim_nan", np.nan), ("pixdim_zero", 0.0), ("pixdim_negative", -1.0),
                       ("pixdim_inf", np.inf)):
        h = bytearray(header)
        h[80:84] = np.float32(value).tobytes()
        put(key, bytes(h), ".nii")
    empty_dir = out / "ct_empty_folder"
    empty_dir.mkdir()
    result["empty_folder"] = (empty_dir, "error")
    junk_dir = out / "ct_junk_folder"
    junk_dir.mkdir()
    for k in range(3):
        (junk_dir / f"IM{k}.dcm").write_bytes(b"DICM" + bytes(200))
    result["junk_folder"] = (junk_dir, "error")
    dicom = REAL_CT_DIR / "ct_pelvis_dicom"

    def dicom_variant(key, patch=None, drop=None, truncate=None):
        d = out / f"ct_dicom_{key}"
        shutil.copytree(dicom, d)
        files = sorted(d.iterdir())
        for f in files:
            if patch is not None:
                data = f.read_bytes()
                assert patch[0] in data, (key, f)
                f.write_bytes(data.replace(patch[0], patch[1].ljust(len(patch[0]))))
        if drop is not None:
            files[drop].unlink()
        if truncate is not None:
            files[truncate].write_bytes(files[truncate].read_bytes()[:4096])
        result[key] = (d, "error")

    spacing = b"0.9765625\\0.9765625 "
    dicom_variant("dicom_spacing_zero", patch=(spacing, b"0\\0"))
    dicom_variant("dicom_spacing_negative", patch=(spacing, b"-1\\-1"))
    dicom_variant("dicom_orientation_degenerate", patch=(b"1\\0\\0\\0\\1\\0 ", b"1\\0\\0\\1\\0\\0"))
    dicom_variant("dicom_slice_missing", drop=10)
    dicom_variant("dicom_slice_truncated", truncate=7)
    mha = out / "ct_small.mha"
    sitk.WriteImage(small, str(mha))
    payload = mha.read_bytes()
    put("mha_truncated", payload[: len(payload) - 1000], ".mha")
    return result


def _image_variants(shot: Path, out: Path) -> dict[str, tuple[Path, str]]:
    import cv2

    data = shot.read_bytes()
    result = {"missing": (out / "img_missing.png", "error")}
    for key, payload in (("empty", b""), ("garbage", bytes(range(256)) * 16), ("text", b"not an image\n"),
                         ("truncated", data[: len(data) // 3])):
        path = out / f"img_{key}.png"
        path.write_bytes(payload)
        result[key] = (path, "error")
    tiny = out / "img_tiny.png"
    cv2.imwrite(str(tiny), np.zeros((2, 2), np.uint8))
    result["tiny"] = (tiny, "error")
    blank = out / "img_blank.png"
    cv2.imwrite(str(blank), np.zeros((128, 128), np.uint8))
    result["blank"] = (blank, "clean")
    folder = out / "img_folder.png"
    folder.mkdir()
    result["folder"] = (folder, "error")
    return result


def _case_variants(case: Path, out: Path) -> dict[str, tuple[Path, str]]:
    result = {"missing": (out / "case_missing", "error")}
    empty = out / "case_empty"
    empty.mkdir()
    result["empty_folder"] = (empty, "error")
    for key, mutate in (("db_garbage", lambda db: db.write_bytes(bytes(range(256)) * 64)),
                        ("db_empty", lambda db: db.write_bytes(b"")),
                        ("db_truncated", lambda db: db.write_bytes(db.read_bytes()[:2048]))):
        d = out / f"case_{key}"
        shutil.copytree(case, d)
        mutate(d / "case.sqlite")
        result[key] = (d, "error")
    d = out / "case_no_info_row"
    shutil.copytree(case, d)
    with sqlite3.connect(d / "case.sqlite") as conn:
        conn.execute("DELETE FROM case_info")
    result["no_info_row"] = (d, "error")
    f = out / "case_is_file"
    f.write_text("x")
    result["is_file"] = (f, "error")
    return result


def build_variants(base: dict[str, Path], root: Path) -> dict[str, dict[str, tuple[Path, str]]]:
    """Every damaged input, by family: ``{family: {variant: (path, expectation)}}``."""
    root.mkdir(parents=True, exist_ok=True)
    geometry_fields = tuple(json.loads(base["geometry"].read_text()).keys() - {"schema"})
    return {
        "geometry": {**_json_variants(base["geometry"], root, "geometry"),
                     **_field_variants(base["geometry"], root, "geometry", geometry_fields, GEOMETRY_REQUIRED)},
        "pose": {**_json_variants(base["pose"], root, "pose"),
                 **_field_variants(base["pose"], root, "pose", ("T_source_from_patient",),
                                   ("T_source_from_patient",))},
        "plan": {**_json_variants(base["plan"], root, "planfile"), **_plan_variants(base["plan"], root)},
        "ct": _ct_variants(base["ct"], root),
        "image": _image_variants(base["shot"], root),
        "case": _case_variants(base["case"], root),
    }


# ----------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One command line of the corpus.

    ``family`` names the damaged input fed in (``None`` for argument-only cases, whose
    ``expect`` is given here); ``argv(base, bad, tmp)`` builds the command line from the
    valid inputs, the damaged path and a scratch folder.
    """

    name: str
    family: str | None
    argv: Callable[[dict, Path, Path], list[str]]
    expect: str = "error"
    own_process: bool = False   # run as the real command: what a library prints only on first use counts


def _s(p) -> str:
    return str(p)


def _variant_cases() -> list[Case]:
    g, p, c, i = "geometry", "pose", "ct", "image"
    return [
        Case("info", c, lambda b, x, t: ["info", _s(x)]),
        Case("simulate-ct", c, lambda b, x, t: ["simulate", _s(x), "--pose", _s(b["pose"]), "--geometry",
                                                 _s(b["geometry"]), "--out", _s(t / "s.png")]),
        Case("simulate-geometry", g, lambda b, x, t: ["simulate", _s(b["ct"]), "--pose", _s(b["pose"]),
                                                       "--geometry", _s(x), "--out", _s(t / "s.png")]),
        Case("simulate-pose", p, lambda b, x, t: ["simulate", _s(b["ct"]), "--pose", _s(x), "--geometry",
                                                   _s(b["geometry"]), "--out", _s(t / "s.png")]),
        Case("view-pose-plan", "plan", lambda b, x, t: ["view-pose", _s(x), "--implant", b["implant"],
                                                         "--view", "lateral"]),
        Case("view-pose-geometry", g, lambda b, x, t: ["view-pose", _s(b["plan"]), "--implant", b["implant"],
                                                        "--view", "inlet", "--geometry", _s(x)]),
        Case("plan-check-ct", c, lambda b, x, t: ["plan-check", _s(b["plan"]), "--ct", _s(x)]),
        Case("register-image", i, lambda b, x, t: ["register", "--ct", _s(b["ct"]), "--geometry",
                                                    _s(b["geometry"]), "--image", _s(x), "--init",
                                                    _s(t / "missing_pose.json"), "--out", _s(t / "r.json")]),
        Case("register-init", p, lambda b, x, t: ["register", "--ct", _s(b["ct"]), "--geometry",
                                                   _s(b["geometry"]), "--image", _s(b["shot"]), "--init", _s(x),
                                                   "--out", _s(t / "r.json")]),
        Case("pin-shot", i, lambda b, x, t: ["pin", "--ct", _s(b["ct"]), "--geometry", _s(b["geometry"]),
                                             "--plan", _s(b["plan"]), "--implant", b["implant"],
                                             "--shot", _s(x), _s(b["pose"]), "--out", _s(t / "d.json")]),
        Case("pin-pose", p, lambda b, x, t: ["pin", "--ct", _s(b["ct"]), "--geometry", _s(b["geometry"]),
                                             "--plan", _s(b["plan"]), "--implant", b["implant"],
                                             "--shot", _s(b["shot"]), _s(x), "--out", _s(t / "d.json")]),
        Case("calibrate-image", i, lambda b, x, t: ["calibrate", _s(x), "--phantom", "bead_grid_two_plane",
                                                     "--out", _s(t / "c.json")]),
        Case("evaluate-postop", c, lambda b, x, t: ["evaluate", "--plan", _s(b["plan"]), "--postop", _s(x),
                                                     "--out", _s(t / "e.json")]),
        Case("report", "case", lambda b, x, t: ["report", _s(x), "--out", _s(t / "r.html")]),
        Case("export", "case", lambda b, x, t: ["export", _s(x), _s(t / "export")]),
        Case("run-plan", "plan", lambda b, x, t: ["run", "--headless", "--plan", _s(x), "--geometry",
                                                  _s(b["geometry"]), "--source", _s(b["shot"]),
                                                  "--cases", _s(t / "cases"), "--max-shots", "1",
                                                  "--duration", "20"]),
        Case("run-geometry", g, lambda b, x, t: ["run", "--headless", "--plan", _s(b["plan"]), "--geometry",
                                                 _s(x), "--source", _s(b["shot"]), "--cases", _s(t / "cases"),
                                                 "--max-shots", "1", "--duration", "20"]),
    ]


def _argument_cases() -> list[Case]:
    """Nonsense arguments and unwritable outputs (no damaged file)."""
    sim = lambda b, t, *extra: ["simulate", _s(b["ct"]), "--pose", _s(b["pose"]),  # noqa: E731
                                "--geometry", _s(b["geometry"]), *extra]
    out = []
    for value in ("0", "-5", "1000000000", "abc", "nan"):
        out.append(Case(f"geometry--size={value}", None,
                        lambda b, x, t, v=value: ["geometry", "siemens_cios_fusion", "--size", v]))
    out.append(Case("geometry-unknown-profile", None, lambda b, x, t: ["geometry", "no_such_c_arm"]))
    for value in ("-5", "nan", "inf", "1e9"):
        out.append(Case(f"plan-check--min-clearance-mm={value}", None,
                        lambda b, x, t, v=value: ["plan-check", _s(b["plan"]), f"--min-clearance-mm={v}"]))
    for value in ("nan", "1e9", "-400"):
        out.append(Case(f"view-pose--tilt-deg={value}", None,
                        lambda b, x, t, v=value: ["view-pose", _s(b["plan"]), "--implant", b["implant"],
                                                  "--view", "inlet", f"--tilt-deg={v}"]))
        out.append(Case(f"view-pose--source-to-isocenter-mm={value}", None,
                        lambda b, x, t, v=value: ["view-pose", _s(b["plan"]), "--implant", b["implant"],
                                                  "--view", "lateral", f"--source-to-isocenter-mm={v}"]))
    out.append(Case("view-pose-unknown-implant", None,
                    lambda b, x, t: ["view-pose", _s(b["plan"]), "--implant", "NOPE", "--view", "lateral"]))
    for value in ("0", "-3", "100000"):
        out.append(Case(f"views--size-px={value}", None,
                        lambda b, x, t, v=value: ["views", _s(b["plan"]), "--geometry", _s(b["geometry"]),
                                                  "--out", _s(t / "lib"), "--size-px", v, "--no-png"]))
    out.append(Case("views--neighbourhood-deg=nan", None,
                    lambda b, x, t: ["views", _s(b["plan"]), "--geometry", _s(b["geometry"]), "--out",
                                     _s(t / "lib"), "--neighbourhood-deg", "nan", "--no-png"]))
    for flag, value in (("--dose", "0"), ("--dose", "-1"), ("--dose", "nan"), ("--dose", "1e300"),
                        ("--frame", "0x0"), ("--frame", "100000x100000"), ("--frame", "axb"),
                        ("--frame", "-10x20"), ("--seed", "-1"), ("--pin-tip", "1,2"),
                        ("--pin-tip", "nan,0,0")):
        extra = [f"{flag}={value}"] + (["--pin-back=0,0,0"] if flag == "--pin-tip" else [])
        out.append(Case(f"simulate{flag}={value}", None,
                        lambda b, x, t, e=tuple(extra): sim(b, t, *e, "--out", _s(t / "s.png"))))
    # Outputs that cannot be written.
    out.append(Case("simulate-out-under-a-file", None,
                    lambda b, x, t: sim(b, t, "--out", _s(b["shot"]) + "/s.png")))
    out.append(Case("simulate-out-onto-a-folder", None, lambda b, x, t: sim(b, t, "--out", _s(t))))
    out.append(Case("register-out-under-a-file", None,
                    lambda b, x, t: ["register", "--ct", _s(b["ct"]), "--geometry", _s(b["geometry"]),
                                     "--image", _s(b["shot"]), "--init", _s(b["pose"]),
                                     "--out", _s(b["shot"]) + "/r.json"]))
    out.append(Case("register-out-onto-a-folder", None,
                    lambda b, x, t: ["register", "--ct", _s(b["ct"]), "--geometry", _s(b["geometry"]),
                                     "--image", _s(b["shot"]), "--init", _s(b["pose"]), "--out", _s(t)]))
    out.append(Case("geometry-out-onto-a-folder", None,
                    lambda b, x, t: ["geometry", "siemens_cios_fusion", "--out", _s(t)]))
    out.append(Case("view-pose-out-under-a-file", None,
                    lambda b, x, t: ["view-pose", _s(b["plan"]), "--implant", b["implant"], "--view", "lateral",
                                     "--out", _s(b["shot"]) + "/p.json"]))
    out.append(Case("views-out-is-a-file", None,
                    lambda b, x, t: ["views", _s(b["plan"]), "--geometry", _s(b["geometry"]), "--out",
                                     _s(b["shot"]), "--no-png"]))
    out.append(Case("report-out-under-a-file", None,
                    lambda b, x, t: ["report", _s(b["case"]), "--out", _s(b["shot"]) + "/r.html"]))
    out.append(Case("export-out-is-a-file", None, lambda b, x, t: ["export", _s(b["case"]), _s(b["shot"])]))
    out.append(Case("sample-out-is-a-file", None, lambda b, x, t: ["sample", "--out", _s(b["shot"])]))
    out.append(Case("cases-root-is-a-file", None, lambda b, x, t: ["cases", "--root", _s(b["shot"])]))
    out.append(Case("run-cases-under-a-file", None,
                    lambda b, x, t: ["run", "--headless", "--plan", _s(b["plan"]), "--geometry", _s(b["geometry"]),
                                     "--source", _s(b["shot"]), "--cases", _s(b["shot"]) + "/cases",
                                     "--max-shots", "1"]))
    for value in ("0", "-1", "nan"):
        out.append(Case(f"run--duration={value}", None,
                        lambda b, x, t, v=value: ["run", "--headless", "--plan", _s(b["plan"]), "--geometry",
                                                  _s(b["geometry"]), "--source", _s(b["shot"]),
                                                  "--cases", _s(t / "cases"), f"--duration={v}"]))
    out.append(Case("run--max-shots=-1", None,
                    lambda b, x, t: ["run", "--headless", "--plan", _s(b["plan"]), "--geometry", _s(b["geometry"]),
                                     "--source", _s(b["shot"]), "--cases", _s(t / "cases"), "--max-shots=-1"]))
    out.append(Case("calibrate-unknown-phantom", None,
                    lambda b, x, t: ["calibrate", _s(b["shot"]), "--phantom", "no_such_phantom",
                                     "--out", _s(t / "c.json")]))
    out.append(Case("calibrate--roi-outside", None,
                    lambda b, x, t: ["calibrate", _s(b["shot"]), "--phantom", "bead_grid_two_plane",
                                     "--roi", "0,0,0,0", "--out", _s(t / "c.json")]))
    out.append(Case("evaluate-binary-cohort-file", None,
                    lambda b, x, t: ["evaluate", "--cohort-file", _write(t / "cohort.csv", bytes(range(256)) * 8),
                                     "--out", _s(t / "cohort")]))
    out.append(Case("evaluate-cohort-bad-entry", None,
                    lambda b, x, t: ["evaluate", "--cohort", "nocolon", "--out", _s(t / "cohort")]))
    def run_source(make):
        return lambda b, x, t: ["run", "--headless", "--plan", _s(b["plan"]), "--geometry", _s(b["geometry"]),
                                "--source", make(t), "--cases", _s(t / "cases"), "--source-timeout", "2",
                                "--no-signal-report", "1"]

    def folder(t, files):
        d = t / "frames"
        d.mkdir(exist_ok=True)
        for name, data in files.items():
            (d / name).write_bytes(data)
        return _s(d)

    for name, make in (
            ("empty-folder", lambda t: folder(t, {})),
            ("undecodable-folder", lambda t: folder(t, {"a.png": b"not a png", "b.jpg": bytes(64)})),
            ("zero-byte-mp4", lambda t: _write(t / "v.mp4", b"")),
            ("garbage-mp4", lambda t: _write(t / "v.mp4", bytes(range(256)) * 64)),
            ("missing-file", lambda t: _s(t / "no_such.mp4")),
            ("unreachable-rtsp", lambda t: "rtsp://user:secret@127.0.0.1:9/carm"),
            ("no-scheme-credentials", lambda t: "user:secret@127.0.0.1/stream")):
        out.append(Case(f"run-source-{name}", None, run_source(make), own_process=True))
    out.append(Case("sources--probe-missing-file", None,
                    lambda b, x, t: ["sources", "--probe", _s(t / "no_such_video.mp4"), "--seconds", "1"]))
    out.append(Case("sources--seconds=-1", None,
                    lambda b, x, t: ["sources", "--probe", _s(b["shot"]), "--seconds", "-1"]))
    return out


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


VARIANT_CASES = _variant_cases()
ARGUMENT_CASES = _argument_cases()


# ----------------------------------------------------------------------------- running


def run_cli(argv: list[str], read_output) -> tuple[object, str, str]:
    """``or-assist ARGV`` in-process: (exit status or what went wrong, stdout, stderr).

    Output is captured at the file descriptors, so what C++ libraries print (ITK's
    warnings, FFmpeg's messages) counts as output too.
    """
    result: dict = {}

    def target():
        try:
            result["code"] = main(argv)
        except SystemExit as exc:          # argparse (and --help) exit this way
            result["code"] = exc.code
        except BaseException as exc:       # noqa: BLE001 - reported below as a traceback
            result["exc"] = exc

    from or_assist.cli import main

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(PER_CASE_LIMIT_S)
    out, err = read_output()
    if t.is_alive():
        return "hang", out, err
    if "exc" in result:
        exc = result["exc"]
        return f"traceback: {type(exc).__name__}: {exc}"[:300], out, err
    return result["code"], out, err


def check(case_name: str, expect: str, code, out: str, err: str) -> str | None:
    """What was wrong with one run, or None."""
    lines = [line for line in err.splitlines() if line.strip()]
    if not isinstance(code, int):
        return f"{case_name}: {code}"
    if "Traceback" in err or "Traceback" in out:
        return f"{case_name}: traceback printed"
    if expect == "error" and code != 2:
        return f"{case_name}: expected exit 2, got {code} (silently accepted?) stdout={out[-200:]!r}"
    if code == 2:
        errors = [line for line in lines if line.startswith("or-assist: error: ")]
        if len(errors) != 1 or len(lines) != 1:
            return f"{case_name}: expected one line 'or-assist: error: ...', got {lines[-3:]!r}"
    elif code not in (0, 1):
        return f"{case_name}: unexpected exit status {code}"
    return None


def run_cli_process(argv: list[str], cwd: Path) -> tuple[object, str, str]:
    """``python -m or_assist.cli ARGV`` in its own process: (exit status or "hang", stdout, stderr)."""
    import subprocess

    try:
        proc = subprocess.run([sys.executable, "-m", "or_assist.cli", *argv], capture_output=True, text=True,
                              cwd=cwd, timeout=PER_CASE_LIMIT_S, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except subprocess.TimeoutExpired as exc:
        return "hang", str(exc.stdout or ""), str(exc.stderr or "")
    if "Traceback" in proc.stderr:
        return f"traceback: {proc.stderr.strip().splitlines()[-1]}"[:300], proc.stdout, proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


class _FdCapture:
    """Capture file descriptors 1 and 2 (what C++ libraries print too) into temporary files."""

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self._files = [tempfile.TemporaryFile(mode="w+b") for _ in range(2)]
        self._saved = [os.dup(1), os.dup(2)]
        for fd, f in zip((1, 2), self._files):
            os.dup2(f.fileno(), fd)
        return self

    def readouterr(self) -> tuple[str, str]:
        sys.stdout.flush()
        sys.stderr.flush()
        texts = []
        for f in self._files:
            f.seek(0)
            texts.append(f.read().decode("utf-8", "replace"))
            f.seek(0)
            f.truncate()
        return texts[0], texts[1]

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self._saved):
            os.dup2(saved, fd)
            os.close(saved)
        for f in self._files:
            f.close()


def campaign(root: Path) -> dict[str, dict[str, int]]:
    """Run the whole corpus; per command: tried, clear, traceback, hang, silently wrong, other."""
    base = build_base(root / "base")
    variants = build_variants(base, root / "bad")
    runs = [(c, v, expect, path) for c in VARIANT_CASES for v, (path, expect) in sorted(variants[c.family].items())]
    runs += [(c, "", c.expect, Path("/nonexistent")) for c in ARGUMENT_CASES]
    tally: dict[str, dict[str, int]] = {}
    problems = []
    os.environ.update(HOME=str(root / "home"), OR_ASSIST_CASES=str(root / "home" / "cases"),
                      QT_QPA_PLATFORM="offscreen")
    with _FdCapture() as cap:
        for case, variant, expect, path in runs:
            name = case.name
            scratch = root / "scratch" / name / variant
            scratch.mkdir(parents=True, exist_ok=True)
            argv = case.argv(base, path, scratch)
            if case.own_process:
                code, out, err = run_cli_process(argv, REPO_ROOT)
            else:
                code, out, err = run_cli(argv, cap.readouterr)
            problem = check(f"{name}[{variant}]" if variant else name, expect, code, out, err)
            command = argv[0]
            row = tally.setdefault(command, dict.fromkeys(
                ("tried", "clear", "traceback", "hang", "silently wrong", "not one line"), 0))
            row["tried"] += 1
            if problem is None:
                row["clear"] += 1
            else:
                problems.append(problem)
                kind = ("hang" if ": hang" in problem else "traceback" if "traceback" in problem
                        else "silently wrong" if "silently accepted" in problem else "not one line")
                row[kind] += 1
    return tally, problems


if __name__ == "__main__":
    # python -m tests.cli.fuzz_corpus: the whole campaign as a table (cases per command).
    with tempfile.TemporaryDirectory(prefix="or_assist_fuzz_") as tmp:
        table, problems = campaign(Path(tmp))
    keys = ("tried", "clear", "traceback", "hang", "silently wrong", "not one line")
    print(f"{'command':12s} " + " ".join(f"{k:>14s}" for k in keys))
    total = dict.fromkeys(keys, 0)
    for command, row in sorted(table.items()):
        print(f"{command:12s} " + " ".join(f"{row[k]:14d}" for k in keys))
        for k in keys:
            total[k] += row[k]
    print(f"{'total':12s} " + " ".join(f"{total[k]:14d}" for k in keys))
    for p in problems:
        print("  " + p[:300])
