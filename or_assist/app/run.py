"""``or-assist demo`` and ``or-assist run``: the OR display, or the same pipeline headless.

:func:`demo_app` plays the built-in sample pelvis through the shot simulator (no
hardware; the CLI passes in the simulator's case opener, which this package does not
import); :func:`run_app` opens a real case. With ``headless=True`` both run the
same :class:`~or_assist.live.pipeline.LivePipeline` without a window
(:func:`~or_assist.live.run.run_headless`) and write the case log.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from or_assist.errors import InputError

if TYPE_CHECKING:
    from or_assist.live.run import LiveCase

__all__ = ["budget_settings", "demo_app", "run_app", "run_window"]


def _print(text: str) -> None:
    print(text, flush=True)


def budget_settings(time_budget_s: float):
    """Registration settings with a time budget per shot (``--time-budget-s``; 0: no limit)."""
    from or_assist.core.validate import check_number
    from or_assist.register.settings import MAX_TIME_BUDGET_S, RegistrationSettings

    budget = check_number(time_budget_s, "--time-budget-s", 0.0, MAX_TIME_BUDGET_S,
                          expected=f"seconds 0-{MAX_TIME_BUDGET_S:.0f} (0: no limit)")
    return RegistrationSettings(time_budget_s=budget or None)


def run_window(case, *, screen: int | None = None, full_screen: bool = False, duration_s: float | None = None,
               settings=None, settings_file=None, log=_print, no_signal_report_s: float | None = None) -> int:
    """Show the OR display for ``case`` until the window is closed (or ``duration_s`` passed).

    ``no_signal_report_s`` (default: the settings') is the interval of the status bar's
    "no signal from ... retrying" reports while the source sends nothing.

    The case is always closed (its end time recorded): on the quit key (Ctrl+Q), on
    closing the window, on Ctrl+C (SIGINT) or SIGTERM (then marked interrupted with the
    signal's name, :meth:`MainWindow.stop_by_signal`), and when the display fails to start
    (then marked interrupted with the error, which is raised again).

    Returns
    -------
    int
        0 (the exit status).
    """
    from PyQt5 import QtCore

    from or_assist.app.main_window import MainWindow
    from or_assist.app.settings import load_settings, save_settings
    from or_assist.app.theme import application, apply_dark_theme

    window = None
    try:
        if settings is None:
            settings, warning = load_settings(settings_file)
            if warning:
                log(f"warning: {warning}")
        if screen is not None:
            settings.screen = int(screen)
        app = application()
        apply_dark_theme(app)
        window = MainWindow(case, settings, no_signal_report_s=no_signal_report_s)
        window.resize(1600, 900)
        window.show_on_screen(settings.screen, full_screen=full_screen)
        window.start()
    except BaseException as exc:
        _failed_start(case, window, exc)
        raise
    if duration_s is not None:
        closer = QtCore.QTimer(window)  # goes with the window
        closer.setSingleShot(True)
        closer.timeout.connect(window.close)
        closer.start(int(1000 * duration_s))
    window.closed.connect(app.quit)
    with _stop_on_signals(window, log):
        app.exec_()
    window.shutdown()
    if window.stopped_by is not None:
        log(f"stopped by {window.stopped_by}")
    save_settings(settings, settings_file)
    if case.case_log is not None:
        log(f"case log: {case.case_log.case_dir}")
    return 0


#: Signals that stop the display (and a headless run) cleanly, with their names for the case log.
STOP_SIGNALS = {"SIGINT": "Ctrl+C (SIGINT)", "SIGTERM": "SIGTERM"}


@contextlib.contextmanager
def _stop_on_signals(window, log):
    """While the Qt event loop runs: Ctrl+C and SIGTERM close the window (and the case).

    Python runs signal handlers only between bytecodes, never while Qt waits in C++; a
    timer wakes the interpreter every 200 ms so that a signal is handled within that.
    Outside the main thread (no signals there) nothing is installed.
    """
    import signal
    import threading

    from PyQt5 import QtCore

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, _frame):
        name = STOP_SIGNALS.get(signal.Signals(signum).name, signal.Signals(signum).name)
        log(f"{name}: closing the display and the case")
        QtCore.QTimer.singleShot(0, lambda: window.stop_by_signal(name))

    for sig_name in STOP_SIGNALS:
        sig = getattr(signal, sig_name)
        previous[sig] = signal.signal(sig, handler)
    wake = QtCore.QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(200)
    try:
        yield
    finally:
        wake.stop()
        for sig, old in previous.items():
            signal.signal(sig, old)


def _failed_start(case, window, exc: BaseException) -> None:
    """A display that did not start leaves no open case: marked interrupted, closed."""
    reason = "Ctrl+C" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
    if case.case_log is not None:
        try:
            case.case_log.mark_interrupted(f"the OR display did not start ({reason}).")
        except Exception:  # noqa: BLE001 - the start's own error is the one to report
            pass
    if window is not None:
        try:
            window.shutdown()  # closes the case too
        except Exception:  # noqa: BLE001
            pass
    _close_after_failure(case)


def _close_after_failure(case) -> None:
    """Close a case whose run failed; the run's own error is the one to report."""
    try:
        case.close()
    except Exception:  # noqa: BLE001 - the first error says what went wrong
        pass


def _window_application():
    from or_assist.app.theme import application

    return application()


def _check_screen(screen) -> None:
    if screen is not None and (isinstance(screen, bool) or not isinstance(screen, int) or screen < 0):
        raise InputError(f"must be a screen index >= 0, got {screen!r}", "--screen")


def demo_app(open_case: Callable[..., LiveCase], *, headless: bool = False, screen: int | None = None,
             full_screen: bool = False, duration_s: float | None = None, max_shots: int | None = None, implants=None,
             cases_root: str | os.PathLike | None = None, settings_file: str | os.PathLike | None = None,
             time_budget_s: float | None = None, log=_print) -> int:
    """``or-assist demo``: the whole workflow on the built-in sample pelvis.

    Parameters
    ----------
    open_case : callable(*, realtime, loop, implants, cases_root) -> LiveCase
        Opens the demo case (:func:`or_assist.sim.scenario.demo_case.open_demo_case`);
        called after the window library was found, with ``realtime=loop=not headless``.
    headless : bool
        No window: run the pipeline as fast as possible and write the case log.
    screen : int, optional
        Screen index for the window (default: the saved one).
    full_screen : bool
        Start full screen.
    duration_s : float, optional
        Close after this long (window) or stop after this much wall time (headless).
    max_shots : int, optional
        Headless: stop after this many shots.
    implants : sequence of str, optional
        Implants the demo visits (default all three of the sample plan).
    cases_root : path-like, optional
        Folder for the case log (default ``$OR_ASSIST_CASES`` or the per-user data folder).
    settings_file : path-like, optional
        Settings JSON (default :func:`or_assist.app.settings.settings_path`).
    time_budget_s : float, optional
        The registration's time budget per shot (0: no limit; default 3 s); passed to
        ``open_case`` as ``registration_settings`` when given.
    log : callable(str)

    Returns
    -------
    int
        Exit status 0.
    """
    from or_assist.live.run import run_headless

    _check_screen(screen)
    if duration_s is not None and not duration_s > 0:
        raise InputError(f"must be seconds > 0, got {duration_s!r}", "--duration")
    options = dict(implants=implants, cases_root=cases_root)
    if time_budget_s is not None:
        options["registration_settings"] = budget_settings(time_budget_s)
    if headless:
        case = open_case(realtime=False, loop=False, **options)
        try:
            summary = run_headless(case, max_shots=max_shots, duration_s=duration_s, log=log)
        except BaseException:
            _close_after_failure(case)
            raise
        case.close()
        log(f"{len(summary['shots'])} shots, {summary['registered']} registered, {summary['captures']} captures "
            f"in {summary['seconds']:.1f} s; case log: {summary['case_dir']}")
        return 0
    _window_application()  # a missing display or window library is reported before a case is opened
    case = open_case(realtime=True, loop=True, **options)
    return run_window(case, screen=screen, full_screen=full_screen, duration_s=duration_s,
                      settings_file=settings_file, log=log)


def run_app(plan: str | os.PathLike | None, geometry: str | os.PathLike | None, source: str | None, *,
            library: str | os.PathLike | None = None, ct: str | os.PathLike | None = None, headless: bool = False,
            screen: int | None = None, full_screen: bool = False, duration_s: float | None = None,
            max_shots: int | None = None, cases_root: str | os.PathLike | None = None,
            settings_file: str | os.PathLike | None = None, source_timeout_s: float | None = None,
            no_signal_report_s: float | None = None, log=_print, dewarp: str | os.PathLike | None = None,
            time_budget_s: float | None = None) -> int:
    """``or-assist run --plan PLAN --library LIB --geometry G --source DEVICE|URL|FILE``: a real case.

    ``plan``, ``geometry``, ``source`` and ``library`` left as None come from the saved
    settings (the last case's); what is used is saved for the next case, the source
    without its password: a source that names a user but no password gets the password
    of ``$OR_ASSIST_SOURCE_PASSWORD``.

    A video file or image folder that yields no frame fails before the case is created;
    a stream or device that sends nothing is retried ("no signal from ... retrying"
    every ``no_signal_report_s``): for ever in the display, for ``source_timeout_s``
    headless, after which the case is recorded as interrupted and closed.

    Parameters
    ----------
    plan, geometry : path-like or None
        ``or_assist.plan/1`` and the ``or_assist.geometry/1`` of the video frame.
    source : str or None
        Device index or path, URL, video file, image folder, or ``sim:...``.
    library : path-like, optional
        View library of the plan (``or-assist views``).
    ct : path-like, optional
        The CT, if not at the plan's path.
    headless, screen, full_screen, duration_s, max_shots, cases_root, settings_file, log
        As :func:`demo_app`.
    source_timeout_s, no_signal_report_s : float, optional
        Seconds (default: the settings file's, 30 and 5); not saved.
    dewarp : path-like, optional
        ``or_assist.dewarp/1`` of an image intensifier, calibrated with the geometry;
        default the saved one when the geometry is the saved one (saved with it).
    time_budget_s : float, optional
        The registration's time budget per shot (0: no limit); default the saved one
        (3 s at first); saved.

    Raises
    ------
    InputError
        A missing plan, geometry or source (neither given nor saved), bad files, a
        recording without a frame, or (headless) a source silent for ``source_timeout_s``.
    """
    from or_assist.app.settings import load_settings, save_settings
    from or_assist.live.run import open_real_case, run_headless
    from or_assist.video.credentials import strip_password, with_password
    from or_assist.video.sources.opencv import quiet_backend_logs

    _check_screen(screen)
    for value, flag in ((source_timeout_s, "--source-timeout"), (no_signal_report_s, "--no-signal-report")):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 < value < float("inf")):
            raise InputError(f"must be a number of seconds > 0, got {value!r}", flag)
    settings, warning = load_settings(settings_file)
    if warning:
        log(f"warning: {warning}")
    plan = plan if plan is not None else settings.plan
    if dewarp is None and (geometry is None or os.fspath(geometry) == settings.geometry):
        dewarp = settings.dewarp       # the dewarp belongs to the geometry it was calibrated with
    geometry = geometry if geometry is not None else settings.geometry
    source = source if source is not None else settings.last_source
    library = library if library is not None else settings.library
    for value, flag in ((plan, "--plan"), (geometry, "--geometry"), (source, "--source")):
        if value is None:
            raise InputError("is required (no previous case saved it)", flag)
    for value in (plan, geometry) + (() if dewarp is None else (dewarp,)):
        if not Path(value).is_file():
            raise InputError("file not found", str(value))
    if not headless:
        _window_application()  # a missing display or window library is reported before a case is opened
    source = with_password(str(source))
    timeout_s = settings.source_timeout_s if source_timeout_s is None else float(source_timeout_s)
    report_s = settings.no_signal_report_s if no_signal_report_s is None else float(no_signal_report_s)
    quiet_backend_logs()
    budget_s = settings.time_budget_s if time_budget_s is None else float(time_budget_s)
    case = open_real_case(plan, geometry, source, library_path=library, ct_path=ct, cases_root=cases_root,
                          source_timeout_s=timeout_s, dewarp_path=dewarp,
                          registration_settings=budget_settings(budget_s))
    settings.time_budget_s = budget_s
    settings.plan, settings.geometry = os.fspath(plan), os.fspath(geometry)
    settings.dewarp = None if dewarp is None else os.fspath(dewarp)
    settings.last_source, settings.library = strip_password(source), None if library is None else os.fspath(library)
    if headless:
        try:
            summary = run_headless(case, max_shots=max_shots, duration_s=duration_s, log=log,
                                   source_timeout_s=timeout_s, no_signal_report_s=report_s)
        except BaseException:
            _close_after_failure(case)
            raise
        case.close()
        save_settings(settings, settings_file)
        log(f"{summary['frames']} frames, {len(summary['shots'])} shots, {summary['registered']} registered; "
            f"case log: {summary['case_dir']}")
        return 0
    return run_window(case, screen=screen, full_screen=full_screen, duration_s=duration_s, settings=settings,
                      settings_file=settings_file, log=log, no_signal_report_s=report_s)
