"""Virtual fluoroscopy: DRRs, implants in images, display model, view library, simulator.

Modules: :mod:`~or_assist.render.drr` (ray caster), :mod:`~or_assist.render.implants`
(metal burn-in, exact metal integrals, projected outlines), :mod:`~or_assist.render.display`
(line integrals to a C-arm-like image), :mod:`~or_assist.render.views.build` (virtual view
library), :mod:`~or_assist.sim.shots.simulate` (realistic shots). Import from the modules;
this package stays light so ``import or_assist.render`` does not compile numba kernels.
"""

__all__ = ["drr", "implants", "display", "views", "simulate"]
