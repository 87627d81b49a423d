"""rgfield: multiscale statistical physics with wavelet renormalisation-group models.

Submodules: :mod:`rgfield.wavelets` (orthogonal periodic wavelet pyramid), :mod:`rgfield.io`
(xarray/netCDF ensembles), :mod:`rgfield.stats` (field statistics), :mod:`rgfield.morphology`
(Minkowski functionals, peak counts, Gaussian predictions), :mod:`rgfield.mcmc`
(MCMC kernels, warm-up, chains, autocorrelation), :mod:`rgfield.fields` (simulators),
:mod:`rgfield.energies` (feature families), :mod:`rgfield.rg` (the hierarchical wavelet RG
model), :mod:`rgfield.compare` (N ensembles against a reference), :mod:`rgfield.cli`. The
layout and its contracts: docs/architecture.md.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rgfield")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "unknown"
