"""The OR display on a real X server (Xvfb, 1920 x 1080): full screen, a registered demo
shot with its overlay, a screenshot of the X screen in test-output/app_xvfb.png."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

REPO = REPO_ROOT
OUTPUT = REPO / "test-output"


@pytest.fixture
def xvfb_display():
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (CI installs it: apt-get install xvfb)")
    for n in range(91, 120):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            break
    proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            message = proc.stderr.read().decode(errors="replace")[-500:]
            proc.stderr.close()
            pytest.fail(f"Xvfb :{n} did not start: {message}")
        time.sleep(0.05)
    yield f":{n}"
    proc.terminate()
    proc.wait(5)
    proc.stderr.close()


@pytest.mark.slow
@pytest.mark.xvfb
def test_demo_window_under_xvfb(xvfb_display):
    import cv2

    OUTPUT.mkdir(exist_ok=True)
    png = OUTPUT / "app_xvfb.png"
    png.unlink(missing_ok=True)
    env = {**os.environ, "DISPLAY": xvfb_display, "QT_QPA_PLATFORM": "xcb",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "app" / "app_xvfb_script.py"), str(png)], env=env,
                          capture_output=True, text=True, timeout=320, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["platform"] == "xcb" and report["full_screen"]
    assert report["screen"] == [1920, 1080]
    assert report["status"]["signal"] == "video: LIVE"
    assert report["status"]["registration"].startswith("registered (")
    assert report["panel"]["level"] in ("ON PLAN", "CLOSE TO PLAN", "OFF PLAN", "SAFETY WARNING")
    assert report["panel"]["mm"].endswith(" mm") and report["panel"]["mm"] != "-- mm"
    assert "3-D from shots" in report["panel"]["state"]   # the big numbers are the two-view 3-D ones
    image = cv2.imread(str(png), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (1080, 1920, 3)
    assert image.std() > 20  # not blank
    # the amber plan outline of the active implant is on the screen
    amber = (image[..., 2] > 200) & (image[..., 1] > 140) & (image[..., 1] < 220) & (image[..., 0] < 60)
    assert np.count_nonzero(amber) > 200
