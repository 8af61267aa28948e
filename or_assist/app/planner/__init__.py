"""The planning workstation window (Qt); its logic lives in planning/ and render/.

Modules::

    actions  The planner's user actions: clicks, drags, table edits, undo/redo, save, export, propose.
    panels   Side panel of the planner: tools, the implant table, live checks and distances, landmarks.
    views    Image panels of the planner: a CT slice view and a virtual fluoroscopy view (pyqtgraph).
    window   The virtual surgical planning workstation: ``or-assist plan CT [PLAN]``.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.app.planner import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['actions', 'panels', 'views', 'window'],
    submod_attrs={
        'actions': ['PlannerActionsMixin'],
        'panels': ['PlannerPanel', 'IMPLANT_COLUMNS', 'STATUS_COLOURS'],
        'views': ['SliceView', 'FluoroView', 'implant_colour'],
        'window': ['PlannerWindow', 'plan_app', 'FULL_RES_IDLE_MS'],
    },
)
