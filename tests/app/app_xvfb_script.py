"""Run by tests/app/test_app_xvfb.py under a real X server (Xvfb): open the demo window, wait
for a registered shot with the pin in 3-D (the demo's first inlet + outlet pair), grab the screen into the PNG named on the command line and print
the status and panel texts as JSON. Exit status 0 on success, 3 on a timeout.

The wait follows the demo: it ends when no new shot result has come for ``stall_s``
(the pipeline is stuck) or after ``limit_s`` in all, so a machine that other work slows
still gets there while a stuck demo fails in time (what it saw goes to stderr)."""

from __future__ import annotations

import json
import sys
import tempfile
import time


def main(out_png: str, stall_s: float = 100.0, limit_s: float = 270.0) -> int:
    from PyQt5 import QtCore, QtWidgets

    from or_assist.app.main_window import MainWindow
    from or_assist.app.settings import AppSettings
    from or_assist.app.theme import apply_dark_theme
    from or_assist.sim.scenario.demo_case import open_demo_case

    app = QtWidgets.QApplication(sys.argv[:1])
    apply_dark_theme(app)
    from or_assist.register.settings import RegistrationSettings

    case = open_demo_case(cases_root=tempfile.mkdtemp(), implants=["L1"],
                          registration_settings=RegistrationSettings(time_budget_s=None), hold_s=20.0)
    window = MainWindow(case, AppSettings())
    window.show_on_screen(0, full_screen=True)
    window.start()
    started = time.monotonic()
    state = {"code": 3, "last": None, "progress": started, "results": 0}

    def check():
        r = window.last_result
        now = time.monotonic()
        if r is not state["last"]:
            state["last"], state["progress"], state["results"] = r, now, state["results"] + 1
        if (r is not None and r.registered and r.deviation_3d is not None and window.overlay_visible
                and window.virtual_item.image is not None):
            QtCore.QTimer.singleShot(300, finish)  # let the panel repaint
            poll.stop()
        elif now - state["progress"] > stall_s or now - started > limit_s:
            print(f"timed out after {now - started:.0f} s: {state['results']} shot results, the last "
                  f"{now - state['progress']:.0f} s ago; status {window.status_text()}", file=sys.stderr, flush=True)
            app.quit()

    def finish():
        pixmap = app.primaryScreen().grabWindow(0)  # the X server's screen, not the widget tree
        pixmap.save(out_png)
        print(json.dumps({"status": window.status_text(), "panel": window.panel_text(),
                          "platform": app.platformName(), "full_screen": window.isFullScreen(),
                          "screen": [pixmap.width(), pixmap.height()]}), flush=True)
        state["code"] = 0
        app.quit()

    poll = QtCore.QTimer()
    poll.timeout.connect(check)
    poll.start(100)
    app.exec_()
    window.shutdown()
    return state["code"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
