"""Every command's bad inputs: one line, exit 2, no traceback, no hang.

The corpus (``tests/fuzz_corpus.py``) is generated at test time from the sample data:
damaged JSON (whole file and every field), CTs, images and case folders, nonsense
arguments and outputs that cannot be written. Each command runs in-process through
:func:`or_assist.cli.main`, so an exception that escapes is a failure here just as it
would be a traceback for the user. Each test replays all damaged inputs of one family
through one command and reports every case that misbehaved.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.fuzz_corpus import ARGUMENT_CASES, VARIANT_CASES, Case, build_base, build_variants
from or_assist.cli import main

PER_CASE_LIMIT_S = 120.0   # a hang, not a speed bound: most cases end in milliseconds


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    base = build_base(root / "base")
    return base, build_variants(base, root / "bad")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Settings and cases of these runs stay in the test's folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home" / ".local" / "share"))
    monkeypatch.setenv("OR_ASSIST_CASES", str(tmp_path / "home" / "cases"))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")


def run_cli(argv: list[str], capsys) -> tuple[object, str, str]:
    """``or-assist ARGV`` in-process: (exit status, stdout, stderr); an escaping exception is raised."""
    result: dict = {}

    def target():
        try:
            result["code"] = main(argv)
        except SystemExit as exc:          # argparse (and --help) exit this way
            result["code"] = exc.code
        except BaseException as exc:       # noqa: BLE001 - reported below as a traceback
            result["exc"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(PER_CASE_LIMIT_S)
    out, err = capsys.readouterr()
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


@pytest.mark.timeout(900)
@pytest.mark.parametrize("case", VARIANT_CASES, ids=lambda c: c.name)
def test_damaged_inputs(case: Case, corpus, tmp_path, capsys):
    base, variants = corpus
    problems, count = [], 0
    for variant, (path, expect) in sorted(variants[case.family].items()):
        scratch = tmp_path / variant
        scratch.mkdir()
        code, out, err = run_cli(case.argv(base, path, scratch), capsys)
        count += 1
        problem = check(f"{case.name}[{variant}]", expect, code, out, err)
        if problem:
            problems.append(problem)
    assert count >= 5
    assert not problems, f"{len(problems)} of {count} cases misbehaved:\n" + "\n".join(problems)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", ARGUMENT_CASES, ids=lambda c: c.name)
def test_bad_arguments_and_outputs(case: Case, corpus, tmp_path, capsys):
    base, _ = corpus
    code, out, err = run_cli(case.argv(base, Path("/nonexistent"), tmp_path), capsys)
    problem = check(case.name, case.expect, code, out, err)
    assert problem is None, problem


def test_the_valid_inputs_work(corpus, tmp_path, capsys):
    """The corpus's base files are valid: the damage, not the base, makes the errors."""
    base, variants = corpus
    code, out, err = run_cli(["info", str(base["ct"])], capsys)
    assert code == 0, err
    code, out, err = run_cli(["view-pose", str(variants["plan"]["valid"][0]), "--implant", base["implant"],
                              "--view", "lateral", "--geometry", str(base["geometry"])], capsys)
    assert code == 0, err
    code, out, err = run_cli(["simulate", str(base["ct"]), "--pose", str(base["pose"]), "--geometry",
                              str(base["geometry"]), "--out", str(tmp_path / "s.png")], capsys)
    assert code == 0 and (tmp_path / "s.png").is_file(), err
    code, out, err = run_cli(["report", str(base["case"]), "--out", str(tmp_path / "r.html")], capsys)
    assert code == 0 and (tmp_path / "r.html").is_file(), err
