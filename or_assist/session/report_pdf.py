"""The case report as PDF: headless Chromium prints the HTML report (``--print-to-pdf``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from or_assist.core.outputs import remove_quietly, write_errors
from or_assist.errors import InputError
from or_assist.session.images import FILE_MODE

__all__ = ["find_chromium", "chromium_args", "export_pdf"]

_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable on ``PATH``, or None."""
    for name in _CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_args(chromium: str, profile_dir: str) -> list[str]:
    """The headless Chromium command line used for printing and testing (no network, no GPU)."""
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile_dir}"]


def export_pdf(html_path, pdf_path=None, *, timeout_s: float = 120.0) -> Path:
    """Print an HTML report to PDF with headless Chromium.

    Raises
    ------
    InputError
        No Chromium executable found (install the ``chromium`` package), the HTML file
        is missing, or Chromium failed (its message is included).
    """
    html_path = Path(html_path)
    if not html_path.is_file():
        raise InputError("file not found", str(html_path))
    pdf = html_path.with_suffix(".pdf") if pdf_path is None else Path(pdf_path)
    chromium = find_chromium()
    if chromium is None:
        raise InputError("PDF output needs Chromium (Debian package 'chromium'); none was found on PATH. "
                         "The HTML report can be printed to PDF from any browser", "--pdf")
    # Printed to a temporary name beside it, renamed when complete: a failed print (disk
    # full, Chromium killed) leaves neither a partial PDF nor the temporary file.
    tmp = pdf.with_name(f".{pdf.name}.{os.getpid()}.tmp.pdf")
    try:
        with tempfile.TemporaryDirectory(prefix="or_assist_chromium_") as profile:
            cmd = chromium_args(chromium, profile) + ["--no-pdf-header-footer", f"--print-to-pdf={tmp.resolve()}",
                                                      html_path.resolve().as_uri()]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise InputError(f"Chromium did not finish printing within {timeout_s:g} s", str(html_path)) from None
        if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            raise InputError(f"Chromium could not print the report (exit {proc.returncode}): "
                             f"{proc.stderr.strip()[-300:]}", str(html_path))
        with write_errors(pdf, "the PDF"):
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, pdf)
    finally:
        remove_quietly(tmp)
    return pdf
