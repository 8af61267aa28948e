"""2-D/3-D registration of fluoroscopy shots to the CT.

Modules: :mod:`~or_assist.register.pipeline` (:class:`Registrar`, results),
:mod:`~or_assist.register.settings` (stages, calibrated thresholds, settings),
:mod:`~or_assist.register.shot` (frame to registration pyramid), :mod:`~or_assist.register.similarity`
(masked NCC, gradient correlation, patch-wise gradient NCC), :mod:`~or_assist.register.optimize`
(CMA-ES, compass search), :mod:`~or_assist.register.pose_params` (pose update parameters, errors),
:mod:`~or_assist.register.init2d` (2-D initialisation), :mod:`~or_assist.cli.register`
(``or-assist register``). Import from the modules; this package stays light.
"""

__all__ = ["pipeline", "settings", "shot", "similarity", "optimize", "pose_params", "init2d", "command"]
