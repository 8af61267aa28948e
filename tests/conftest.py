"""Shared pytest fixtures: the real CT data in tests/data/real_ct and a Qt-free guard."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_PLAN = REPO_ROOT / "tests" / "data" / "real_ct_plan.json"  # the real-CT fixture plan
TEST_DATA = Path(__file__).resolve().parent / "data"
REAL_CT_DIR = TEST_DATA / "real_ct"


@pytest.fixture(scope="session")
def real_ct_dir() -> Path:
    """``tests/data/real_ct``: the real CT fixtures carried with the repository."""
    if not REAL_CT_DIR.is_dir():
        pytest.fail(f"real-CT fixtures not found at {REAL_CT_DIR}; the clone is incomplete")
    return REAL_CT_DIR


@pytest.fixture(scope="session")
def real_ct_path(real_ct_dir) -> Path:
    """The real 3 mm abdomen-pelvis CT (NIfTI, LPS direction diag(-1, -1, 1))."""
    return real_ct_dir / "ct_abdomen_pelvis_3mm.nii.gz"


@pytest.fixture(scope="session")
def dicom_dir(real_ct_dir) -> Path:
    """The real 20-slice DICOM series folder."""
    return real_ct_dir / "ct_pelvis_dicom"
