"""Run by tests/app/test_app_display_state.py in its own process (offscreen): the OR display
on a case whose source sends nothing, until a signal stops it. Prints ``ready`` once the
event loop runs, then what :func:`or_assist.app.run.run_window` logs. Arguments: the
cases folder and the settings file."""

from __future__ import annotations

import sys


def main(cases_root: str, settings_file: str) -> int:
    from PyQt5 import QtCore, QtWidgets

    from or_assist.app.run import run_window
    from or_assist.app.settings import AppSettings
    from or_assist.live.pipeline import LivePipeline
    from or_assist.live.run import LiveCase
    from or_assist.session.caselog import CaseLog
    from or_assist.sim.scenario.spec import load_sample_case
    from or_assist.video.sources.opencv import UrlSource
    from tests.video.mjpeg_server import closed_port

    _, plan, geometry = load_sample_case()
    log = CaseLog.create(cases_root, plan=plan, geometry=geometry.to_dict())
    case = LiveCase(UrlSource(f"rtsp://127.0.0.1:{closed_port()}/x", open_timeout_s=0.5),
                    LivePipeline(plan, geometry, registrar=object(), case_log=log), "silent", None, log)
    app = QtWidgets.QApplication(sys.argv[:1])
    QtCore.QTimer.singleShot(0, lambda: print("ready", flush=True))  # runs once the event loop does
    code = run_window(case, settings=AppSettings(), settings_file=settings_file, duration_s=60.0,
                      log=lambda line: print(line, flush=True))
    del app
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
