"""Every command's bad inputs: one line, exit 2, no traceback, no hang.

The corpus (``tests/cli/fuzz_corpus.py``) is generated at test time from the sample data:
damaged JSON (whole file and every field), CTs, images and case folders, nonsense
arguments and outputs that cannot be written. Each command runs in-process through
:func:`or_assist.cli.main`, so an exception that escapes is a failure here just as it
would be a traceback for the user. Each test replays all damaged inputs of one family
through one command and reports every case that misbehaved.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.fuzz_corpus import ARGUMENT_CASES, VARIANT_CASES, Case, check, run_cli, run_cli_process
from tests.conftest import REPO_ROOT

REPO = REPO_ROOT


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Settings and cases of these runs stay in the test's folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home" / ".local" / "share"))
    monkeypatch.setenv("OR_ASSIST_CASES", str(tmp_path / "home" / "cases"))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("case", VARIANT_CASES, ids=lambda c: c.name)
def test_damaged_inputs(case: Case, corpus, tmp_path, capfd):
    base, variants = corpus
    problems, count = [], 0
    for variant, (path, expect) in sorted(variants[case.family].items()):
        scratch = tmp_path / variant
        scratch.mkdir()
        code, out, err = run_cli(case.argv(base, path, scratch), capfd.readouterr)
        count += 1
        problem = check(f"{case.name}[{variant}]", expect, code, out, err)
        if problem:
            problems.append(problem)
    assert count >= 5
    assert not problems, f"{len(problems)} of {count} cases misbehaved:\n" + "\n".join(problems)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", ARGUMENT_CASES, ids=lambda c: c.name)
def test_bad_arguments_and_outputs(case: Case, corpus, tmp_path, capfd):
    base, _ = corpus
    argv = case.argv(base, Path("/nonexistent"), tmp_path)
    if case.own_process:
        code, out, err = run_cli_process(argv, REPO)
    else:
        code, out, err = run_cli(argv, capfd.readouterr)
    problem = check(case.name, case.expect, code, out, err)
    assert problem is None, problem
    assert "secret" not in out + err          # a source's password is never printed


def test_the_valid_inputs_work(corpus, tmp_path, capfd):
    """The corpus's base files are valid: the damage, not the base, makes the errors."""
    base, variants = corpus
    code, out, err = run_cli(["info", str(base["ct"])], capfd.readouterr)
    assert code == 0, err
    code, out, err = run_cli(["view-pose", str(variants["plan"]["valid"][0]), "--implant", base["implant"],
                              "--view", "lateral", "--geometry", str(base["geometry"])], capfd.readouterr)
    assert code == 0, err
    code, out, err = run_cli(["simulate", str(base["ct"]), "--pose", str(base["pose"]), "--geometry",
                              str(base["geometry"]), "--out", str(tmp_path / "s.png")], capfd.readouterr)
    assert code == 0 and (tmp_path / "s.png").is_file(), err
    code, out, err = run_cli(["report", str(base["case"]), "--out", str(tmp_path / "r.html")], capfd.readouterr)
    assert code == 0 and (tmp_path / "r.html").is_file(), err
