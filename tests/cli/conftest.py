"""Fixtures of the CLI tests: the bad-input corpus (:mod:`tests.cli.fuzz_corpus`)."""

from __future__ import annotations

import pytest

from tests.cli.fuzz_corpus import build_base, build_variants


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """``(base, variants)``: valid base inputs made from the sample data, and the damaged
    variants of each input family built from them."""
    root = tmp_path_factory.mktemp("fuzz")
    base = build_base(root / "base")
    return base, build_variants(base, root / "bad")
