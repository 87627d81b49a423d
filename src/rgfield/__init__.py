"""rgfield: multiscale statistical physics with wavelet renormalisation-group models.

Submodules: :mod:`rgfield.wavelets` (orthogonal periodic wavelet pyramid), :mod:`rgfield.io`
(xarray/netCDF ensembles), :mod:`rgfield.stats` (field statistics), :mod:`rgfield.cli`.
"""

from rgfield.io import _rgfield_version

__version__ = _rgfield_version()
