"""Shared test set-up.

kymatio 0.3.0, the independent reference of the scattering filter tests, imports
``scipy.special.sph_harm`` at import time; SciPy 1.17 removed it in favour of ``sph_harm_y``.
The 2D filters compared here never call it, so the old name is supplied (with the old argument
order: order m, degree n, azimuth θ, polar angle φ) before any test imports kymatio.
"""

import scipy.special

if not hasattr(scipy.special, "sph_harm"):

    def _sph_harm(m, n, theta, phi):
        return scipy.special.sph_harm_y(n, m, phi, theta)

    scipy.special.sph_harm = _sph_harm
