"""rgfield: multiscale statistical physics with wavelet renormalisation-group models.

Submodules: :mod:`rgfield.wavelets` (orthogonal periodic wavelet pyramid), :mod:`rgfield.io`
(xarray/netCDF ensembles), :mod:`rgfield.stats` (field statistics), :mod:`rgfield.mcmc`
(MCMC kernels, warm-up, chains, autocorrelation), :mod:`rgfield.fields` (simulators),
:mod:`rgfield.cli`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rgfield")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "unknown"
