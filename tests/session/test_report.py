"""Tests of the case report: contents, privacy, damaged cases, the CLI functions, and the
report opened in headless Chromium (every image loaded; screenshot; PDF).

The Chromium tests need the Debian package ``chromium`` (installed by ``.ci/run``); they
are skipped, saying so, only where no Chromium executable is on PATH.
"""

from __future__ import annotations

import base64
import re
import sqlite3
import stat
import subprocess

import cv2
import numpy as np
import pytest

from or_assist.errors import InputError
from or_assist.session import schema
from or_assist.session.caselog import CASE_DB
from or_assist.cli.cases import cases_command, export_command, report_command
from or_assist.session.report import build_report, final_deviations, registration_stats
from or_assist.session.report_3d import latest_3d
from or_assist.session.report_pdf import chromium_args, export_pdf, find_chromium
from tests.session.caselog_cases import OPERATOR, PATIENT, record_case

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian package 'chromium', "
                                                              "installed by .ci/run)")


def _images(html: str) -> list[np.ndarray]:
    return [cv2.imdecode(np.frombuffer(base64.b64decode(b), np.uint8), cv2.IMREAD_UNCHANGED)
            for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def _text_box(mask):
    ys, xs = np.nonzero(mask)
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)


def _row(html: str, first_cell: str) -> list[str]:
    m = re.search(rf"<tr><td>{re.escape(first_cell)}</td>(.*?)</tr>", html)
    assert m, first_cell
    return [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", m.group(1))]


# --------------------------------------------------------------------------- contents


def test_report_contents(recorded, tmp_path):
    case_dir, written = recorded
    path = build_report(case_dir, tmp_path / "r.html")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    html = path.read_text(encoding="utf-8")
    assert html.count("<img ") == 7 and "http" not in html.replace("http-equiv", "")  # self-contained
    assert PATIENT in html and OPERATOR in html and "2023-11-14" in html
    # plan summary
    assert _row(html, "L1")[:3] == ["left", "S1", "T7-45"] and _row(html, "L2")[-1] == "40.00"
    # registration statistics: 4 shots, 3 of 4 registered, median of 1..4 s
    for label, value in (("Registered", "4"), ("Succeeded", "3"), ("Success rate", "75 %"),
                         ("Median registration time", "2.50 s"), ("Failed: similarity below threshold", "1")):
        assert f"<th>{label}</th><td>{value}</td>" in html
    # final deviations per implant: L1 from capture 2 (2-D and 3-D), L2 from capture 3
    final = re.search(r"Final deviations per implant</h2>(.*?)</table>", html).group(1)
    assert _row(final, "L1")[:6] == ["#2 T+00:02:08", "3.00", "3.00", "#2 T+00:02:08", "3.25", "4.50"]
    assert _row(final, "L2")[:6] == ["#3 T+00:03:08", "4.00", "3.50", "-", "-", "-"]
    # timeline: 4 shots, 3 captures, 2 events in time order
    timeline = re.search(r"Timeline</h2>(.*?)</table>", html).group(1)
    kinds = re.findall(r"\)</td><td>([^<]+)</td>", timeline)
    assert kinds == ["shot", "capture", "shot", "shot", "capture", "event: implant_selected", "event: note",
                     "shot", "capture"]
    assert "NOT registered: similarity below threshold" in timeline
    assert re.search(r"registered in \d\.\d\d s, estimated error \d\.\d mm", timeline)
    assert "Median estimated error at the implant (successful)" in html
    # every capture with its overlay, cue and numbers
    assert html.count('<section class="capture">') == 3
    assert "tip 3.0 mm cranial of plan" in html and "<th>apex_deviation_mm</th><td>3.25</td>" in html
    # images: text masked, the rest as recorded
    images = _images(html)
    for i, sid in enumerate((1, 2, 3, 4)):
        rows, cols = _text_box(written["masks"][sid])
        assert np.all(images[i][rows, cols] == 0)
        assert np.array_equal(images[i][150:, :], written["frames"][sid][150:, :])
    assert np.array_equal(images[4][150:], written["overlays"][1][150:])


def test_report_unmasked_and_default_location(recorded):
    case_dir, written = recorded
    path = build_report(case_dir, mask_text=False)
    assert path == case_dir / "report.html"
    html = path.read_text(encoding="utf-8")
    assert np.array_equal(_images(html)[0], written["frames"][1]) and "NOT masked" in html


def test_pseudonymised_report(recorded, tmp_path):
    case_dir, _ = recorded
    html = build_report(case_dir, tmp_path / "anon.html", pseudonymise=True).read_text(encoding="utf-8")
    html = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", html)
    for secret in (PATIENT, "DOE", OPERATOR, case_dir.name, str(case_dir.parent), "2023"):
        assert secret not in html
    assert "T+00:01:05" in html and "10.0 min" in html and "L1" in html


def test_registration_stats_and_final_deviations():
    shots = [{"registration": {"success": True, "seconds": 1.0, "similarity": 0.9, "metric": "gc",
                               "estimated_error_mm": 0.6}},
             {"registration": {"success": False, "seconds": 5.0, "reason": "far", "estimated_error_mm": 9.0}},
             {"registration": {"success": True, "seconds": 2.0, "similarity": 0.7, "metric": "gc",
                               "estimated_error_mm": 1.0}},
             {"registration": None}]
    st = registration_stats(shots)
    assert (st["shots"], st["registered"], st["succeeded"]) == (4, 3, 2)
    assert st["success_rate"] == pytest.approx(2 / 3) and st["median_seconds"] == 2.0
    assert st["median_similarity"] == pytest.approx(0.8) and st["failure_reasons"] == {"far": 1}
    assert st["median_estimated_error_mm"] == pytest.approx(0.8)   # of the successful ones only
    assert registration_stats([])["success_rate"] is None
    assert registration_stats([])["median_estimated_error_mm"] is None
    caps = [{"id": 1, "implant_id": "A", "deviations": {"deviation_2d": {"angle_deg": 1}}},
            {"id": 2, "implant_id": "A", "deviations": {"deviation_3d": {"angle_deg": 2}, "deviation_2d": None}},
            {"id": 3, "implant_id": None, "deviations": {}}]
    final = final_deviations(caps)
    assert final["A"]["2d"][0]["id"] == 1 and final["A"]["3d"][0]["id"] == 2
    assert final["(none)"] == {"2d": None, "3d": None}


# --------------------------------------------------------------------------- damaged cases


def test_report_of_an_interrupted_case_with_missing_and_damaged_images(tmp_path):
    log, _ = record_case(tmp_path / "c", close=False)
    log.close(end=False)  # as after a crash: no end time
    missing = log.case_dir / "images" / "shot_000003_raw.png"
    damaged = log.case_dir / "images" / "capture_000001.png"
    missing.unlink()
    damaged.write_bytes(damaged.read_bytes()[:100])
    html = build_report(log.case_dir, tmp_path / "r.html").read_text(encoding="utf-8")
    problems = re.search(r"Problems</h2><ul.*?</ul>", html).group(0)
    assert f"shot 3: image file missing: {missing}" in problems
    assert "no end time" in problems and str(damaged) in problems and "SHA-256 differs" in problems
    assert html.count("<img ") == 5 and html.count('class="missing"') == 2
    assert "Shot 3: implant L1" in html and html.count('<section class="capture">') == 3  # rows kept


def test_report_of_a_newer_case_is_refused(tmp_path):
    log, _ = record_case(tmp_path / "c")
    conn = sqlite3.connect(log.case_dir / CASE_DB)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(InputError, match=f"schema version 99, newer than the version {schema.SCHEMA_VERSION}"):
        build_report(log.case_dir)
    assert not (log.case_dir / "report.html").exists()


def test_report_bad_arguments(recorded, tmp_path):
    case_dir, _ = recorded
    with pytest.raises(InputError, match="is a folder"):
        build_report(case_dir, tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        build_report(tmp_path / "nothing")
    with pytest.raises(InputError, match="file not found"):
        export_pdf(tmp_path / "none.html")


# --------------------------------------------------------------------------- CLI functions


def test_command_functions(recorded, tmp_path):
    case_dir, _ = recorded
    out = report_command(case_dir, tmp_path / "cli.html")
    assert out == f"wrote {tmp_path / 'cli.html'}" and (tmp_path / "cli.html").is_file()
    listing = cases_command(case_dir.parent)
    assert case_dir.name in listing and "closed" in listing and PATIENT in listing
    assert re.search(rf"{case_dir.name}\s+2023-11-14 \d\d:\d\d\s+2023-11-14 \d\d:\d\d\s+4\s+3", listing)
    (tmp_path / "empty_root").mkdir()
    assert cases_command(tmp_path / "empty_root") == f"no cases in {tmp_path / 'empty_root'}"
    assert "pseudonymised" in export_command(case_dir, tmp_path / "exp", pseudonymise=True)
    with pytest.raises(InputError, match="not a folder of cases"):
        cases_command(tmp_path / "missing")


def test_pdf_without_chromium(recorded, tmp_path, monkeypatch):
    case_dir, _ = recorded
    monkeypatch.setenv("PATH", str(tmp_path / "empty_bin"))
    out = report_command(case_dir, tmp_path / "r.html", pdf=True)
    assert "wrote" in out and "note: no PDF" in out and "'chromium'" in out
    assert not (tmp_path / "r.pdf").exists()


# --------------------------------------------------------------------------- Chromium


def _chromium(profile, *args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(chromium_args(CHROMIUM, str(profile)) + list(args), capture_output=True, text=True,
                          timeout=timeout)


@needs_chromium
def test_report_in_headless_chromium_loads_every_image(recorded, tmp_path):
    case_dir, _ = recorded
    html = build_report(case_dir, tmp_path / "report.html")
    url = html.resolve().as_uri()
    dom = _chromium(tmp_path / "p1", "--virtual-time-budget=5000", "--dump-dom", url).stdout
    n = html.read_text(encoding="utf-8").count("<img ")
    assert n == 7
    assert dom.count('data-state="loaded"') == n and 'data-state="error"' not in dom
    assert f'data-images-loaded="{n}"' in dom and 'data-images-failed="0"' in dom
    assert f"{n} of {n} images loaded" in dom
    shot = tmp_path / "screen.png"
    proc = _chromium(tmp_path / "p2", f"--screenshot={shot}", "--window-size=1280,4000", url)
    img = cv2.imread(str(shot))
    assert img is not None, proc.stderr[-500:]
    assert img.shape[:2] == (4000, 1280)
    grey = (np.abs(img.astype(int) - img.mean(axis=2, keepdims=True)).max(axis=2) < 6) & (img[..., 0] > 40) & \
        (img[..., 0] < 200)
    assert grey.sum() > 4 * 200 * 200       # the fluoroscopy thumbnails are drawn, not blank boxes
    amber = (img[..., 0] < 60) & (img[..., 1] > 150) & (img[..., 1] < 230) & (img[..., 2] > 220)
    assert amber.sum() > 100                # the overlays' planned axis (amber) is drawn


@needs_chromium
def test_pdf_export(recorded, tmp_path):
    case_dir, _ = recorded
    out = report_command(case_dir, tmp_path / "r.html", pdf=True)
    pdf = tmp_path / "r.pdf"
    assert f"wrote {pdf}" in out
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000
    assert stat.S_IMODE(pdf.stat().st_mode) == 0o600


def _d3(apex, angle, older_id, older_view, view):
    return {"apex_deviation_mm": apex, "angle_deg": angle, "predicted_apex_deviation_mm": apex - 0.5,
            "remaining_depth_mm": 1.0, "uncertainty": {"apex_deviation_mm": 0.8, "angle_deg": 0.4, "tip_mm": 0.9},
            "warnings": [], "shots": [{"number": older_id, "shot_id": older_id, "view": older_view},
                                      {"number": older_id + 1, "shot_id": None, "view": view}]}


def test_latest_3d_per_implant_from_shots_and_captures():
    shots = [{"id": 1, "timestamp": 10.0, "implant_id": "L1", "guidance": {"deviation_3d": None,
                                                                            "deviation_3d_refused": "needs a second"}},
             {"id": 2, "timestamp": 20.0, "implant_id": "L1", "guidance": {"deviation_3d": _d3(3.0, 4.0, 1, "inlet",
                                                                                                 "outlet")}},
             {"id": 3, "timestamp": 30.0, "implant_id": "L1", "guidance": {"deviation_3d": None,
                                                                            "deviation_3d_refused": "pin moved"}},
             {"id": 4, "timestamp": 40.0, "implant_id": "L2", "guidance": {}}]
    latest = latest_3d(shots, [])
    assert latest["L1"]["deviation"]["apex_deviation_mm"] == 3.0 and latest["L1"]["shot_id"] == 2
    assert [s["shot_id"] for s in latest["L1"]["deviation"]["shots"]] == [1, 2]  # the newer is the row itself
    assert latest["L1"]["refused"] == "pin moved"  # said after the last 3-D one
    assert latest["L2"] == {"deviation": None, "shot_id": None, "timestamp": None, "refused": None}
    caps = [{"id": 1, "shot_id": 3, "timestamp": 35.0, "implant_id": "L1",
             "deviations": {"deviation_3d": _d3(1.0, 1.0, 2, "outlet", "inlet")}}]
    assert latest_3d(shots, caps)["L1"]["deviation"]["shots"][1]["shot_id"] == 3


def test_report_3d_section_with_and_without_postop(tmp_path):
    from or_assist.session.caselog import CaseLog
    from tests.session.caselog_cases import make_frame, make_geometry, make_plan, registration

    log = CaseLog.create(tmp_path / "cases", plan=make_plan(), geometry=make_geometry())
    for k, view in enumerate(("inlet", "outlet")):
        guidance = {"deviation_2d": None, "deviation_3d": None if k == 0 else _d3(3.04, 4.46, 1, "inlet", "outlet"),
                    "deviation_3d_refused": "needs a second shot of L1" if k == 0 else None}
        log.log_shot(make_frame(k)[0], registration=registration(True, 1.0), implant_id="L1", view=view,
                     guidance=guidance)
    log.close()
    html = build_report(log.case_dir, tmp_path / "a.html").read_text(encoding="utf-8")
    section = re.search(r"Two-view 3-D deviation per implant.*?</table>", html, re.S).group(0)
    assert _row(section, "L1")[:7] == ["#1 inlet + #2 outlet", "3.0 +- 0.8", "4.5 +- 0.4", "2.5", "1.0",
                                       "not given (report --postop)", "not given (report --postop)"]
    assert _row(section, "L2")[0] == "no 3-D deviation: no shot of this implant was recorded"
    assert "3-D with shot 1 (inlet): apex deviation 3.0 +- 0.8 mm, angle 4.5 +- 0.4 deg" in html  # timeline
    evaluation = tmp_path / "eval.json"
    evaluation.write_text('{"schema": "or_assist.postop_evaluation/1", "implants": [{"id": "L1", "found": true, '
                          '"apex_deviation_mm": 2.75, "angle_deg": 3.9}]}', encoding="utf-8")
    out = report_command(log.case_dir, tmp_path / "b.html", postop=evaluation)
    section = re.search(r"Two-view 3-D deviation per implant.*?</table>",
                        (tmp_path / "b.html").read_text(encoding="utf-8"), re.S).group(0)
    assert "wrote" in out and _row(section, "L1")[5:7] == ["2.8", "3.9"]
    assert _row(section, "L2")[5] == "not in the evaluation"
    # a bad evaluation file is named, and no report is written
    evaluation.write_text('{"schema": "or_assist.pose/1"}', encoding="utf-8")
    with pytest.raises(InputError, match="eval.json"):
        build_report(log.case_dir, tmp_path / "c.html", postop=evaluation)
    evaluation.write_text('{"schema": "or_assist.postop_evaluation/1", "implants": {}}', encoding="utf-8")
    with pytest.raises(InputError, match="eval.json: implants"):
        build_report(log.case_dir, tmp_path / "c.html", postop=evaluation)
    with pytest.raises(InputError, match="missing.json"):
        build_report(log.case_dir, tmp_path / "c.html", postop=tmp_path / "missing.json")
    assert not (tmp_path / "c.html").exists()
