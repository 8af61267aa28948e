"""Fixtures of the case-log and report tests: a recorded case (:mod:`tests.session.caselog_cases`)."""

from __future__ import annotations

import pytest

from tests.session.caselog_cases import record_case


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """``(case_dir, written)``: the closed 4-shot case of
    :func:`~tests.session.caselog_cases.record_case`, recorded once per test module."""
    log, written = record_case(tmp_path_factory.mktemp("cases"))
    return log.case_dir, written
