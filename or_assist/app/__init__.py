"""The PyQt5 + pyqtgraph OR display and planning workstation: the only package that
imports Qt.

Modules::

    planner/       The planning workstation window (Qt); its logic lives in planning/ and render/.
    main_window    The OR display's main window: live shot with the plan, virtual view, deviation panel, status.
    controls       What the OR display's keys do: selection, overlay, full screen, capture, quit.
    image_view     The OR display's image views: the live video with the guidance overlay, the virtual view.
    panel          The OR display's deviation panel and what it shows for the shot on screen.
    status         The OR display's status bar and case line.
    run            ``or-assist demo`` and ``or-assist run``: the OR display, or the same pipeline headless.
    settings       Per-user settings of the OR display (no Qt): last source, geometry, plan, screen.
    theme          Dark, high-contrast theme of the OR display, for reading from 1-2 m.
    window_system  What a window needs from the system before Qt is asked to open one.
    workers        Background work of the OR display: the GUI thread only draws.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.app import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['planner', 'main_window', 'controls', 'image_view', 'panel', 'status', 'run', 'settings', 'theme', 'window_system', 'workers'],
    submod_attrs={
        'main_window': ['MainWindow'],
        'controls': ['KEYS', 'DisplayControls'],
        'image_view': ['ImageView', 'LiveView', 'overlay_layer'],
        'panel': ['DeviationPanel', 'WrappedLabel', 'label', 'main_numbers', 'number_html'],
        'status': ['StatusBar', 'registration_state'],
        'run': ['budget_settings', 'demo_app', 'run_app', 'run_window'],
        'settings': ['SETTINGS_SCHEMA', 'AppSettings', 'settings_path', 'load_settings', 'save_settings', 'SETTINGS_FILE_MODE', 'SETTINGS_FOLDER_MODE'],
        'theme': ['BACKGROUND', 'PANEL', 'TEXT', 'DIM', 'RED', 'AMBER', 'GREEN', 'BLUE', 'NUMBER_PX', 'TITLE_PX', 'TEXT_PX', 'STATUS_PX', 'MIN_TEXT_PX', 'level_colour', 'apply_dark_theme', 'font_px'],
        'window_system': ['XCB_DEBIAN_PACKAGES', 'parse_ldd_missing', 'missing_window_libraries', 'check_window_system'],
        'workers': ['Selection', 'LatestJobWorker', 'JobQueueWorker', 'VideoWorker'],
    },
)
