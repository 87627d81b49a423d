"""Comparison of N ensembles of fields against one reference: statistics, observables, z-scores,
figures and a report.

::

    from rgfield.compare import summary, write_report

    s = summary(reference, {"rg": rg_fields, "diffusion": diffusion_fields})
    print(s.max_abs_z.to_pandas())                 # largest |z| per statistic and ensemble
    s["statistics/power_spectrum"].z.sel(ensemble="rg")
    write_report(reference, {"rg": rg_fields}, "report/", model=model)

- :mod:`~rgfield.compare.statistics`: the per-field statistics compared, a registry
  (:func:`register_statistic`): power spectrum, one-point moments, PDF, structure functions,
  correlation function, coarse-field variance per level, wavelet-coefficient histograms, and
  for 2D fields the Minkowski functionals of the excursion sets and the peak counts by height
  (:mod:`rgfield.morphology`);
- :mod:`~rgfield.compare.observables`: observables chosen by the reference's ``generator``
  attr, a registry (:func:`register_observables`): φ⁴ (⟨|M|⟩, χ, U₄, ξ₂ and the coarse-field
  growth with its Ising value), turbulence, cosmic web;
- :mod:`~rgfield.compare.comparison`: :func:`summary`, every number computed once, as an
  :class:`xarray.DataTree` with a dim ``ensemble``;
- :mod:`~rgfield.compare.plots` and :mod:`~rgfield.compare.report`: figures and report.md
  drawn from the summary; :func:`write_report` writes report.md, summary.nc and figures/.

**One z-score** (:func:`z_score`) everywhere in rgfield: for a statistic or observable with
reference estimate m_ref ± se_ref and ensemble estimate m ± se,

    z = (m − m_ref) / √(se_ref² + se²),

the difference in units of the combined standard error of the two estimates. For statistics
m is the ensemble mean of per-field values and se = s/√n (s their scatter over the n fields);
for observables the errors are blocked-jackknife errors. Under one law z is about standard
normal, whatever the ensemble sizes; a fixed difference gives |z| growing like √n. ``max_abs_z``
is the largest |z| over a statistic's entries: for m independent entries of one law it is
typically √(2 ln m) (about 3 for a few hundred).
"""

from rgfield.compare.comparison import (
    FAILURE_LEVEL,
    Z_DEFINITION,
    as_ensembles,
    failures,
    held,
    summary,
    z_score,
    z_threshold,
)
from rgfield.compare.observables import OBSERVABLES, ObservableSet, register_observables
from rgfield.compare.report import check_report_path, markdown, save_report, write_report
from rgfield.compare.statistics import STATISTICS, Statistic, register_statistic

__all__ = [
    "FAILURE_LEVEL",
    "OBSERVABLES",
    "STATISTICS",
    "Z_DEFINITION",
    "ObservableSet",
    "Statistic",
    "as_ensembles",
    "check_report_path",
    "failures",
    "held",
    "markdown",
    "register_observables",
    "register_statistic",
    "save_report",
    "summary",
    "write_report",
    "z_score",
    "z_threshold",
]
