"""Feature families Φ of the conditional exponential models, and the model U = θᵀΦ.

* :class:`ScalarPotential` (``"potential"``): a potential of the reconstructed finer field on a
  sigmoid basis whose centres follow the data's quantiles.
* :class:`QuadraticInteractions` (``"quadratic"``): stationary couplings ½ Σ_u X_a(u) X_b(u − s)
  of the detail channels with each other and with the coarse field, over a stencil of shifts.
* :class:`ScatteringCovariance` (``"scatcov"``): phase–modulus and modulus–modulus products
  of the details, their smoothed moduli and the coarse field's wavelet envelopes.
* :class:`FieldStiffness` (``"stiffness"``): a stiffness ½ Σ Z(m)(x_q − x_p)² of the finer
  field's nearest-neighbour bonds, Z a function of the bond's midpoint m.
* :class:`SiteStiffness` (``"site_stiffness"``): the same with Z read at the bond's two ends
  and averaged, ¼ Σ (Z(x_p) + Z(x_q))(x_q − x_p)², which tells a spike from a slope.
* :class:`StationaryGaussian` (``"gaussian"``): one feature, the energy of the stationary
  Gaussian conditional fitted mode by mode to the data (:mod:`rgfield.energies.stationary`).
* :class:`ExponentialModel`: energy, gradient and Hessian diagnostics of θᵀΦ.

New families plug in through :class:`FeatureFamily` and :func:`register_feature`.
"""

from rgfield.energies.base import (
    FEATURES,
    ExponentialModel,
    FeatureFamily,
    make_feature,
    register_feature,
)
from rgfield.energies.gaussian import StationaryGaussian
from rgfield.energies.potential import ScalarPotential
from rgfield.energies.quadratic import QuadraticInteractions
from rgfield.energies.scatcov import ScatteringCovariance
from rgfield.energies.stiffness import FieldStiffness, SiteStiffness

__all__ = [
    "FEATURES",
    "ExponentialModel",
    "FeatureFamily",
    "FieldStiffness",
    "QuadraticInteractions",
    "ScalarPotential",
    "ScatteringCovariance",
    "SiteStiffness",
    "StationaryGaussian",
    "make_feature",
    "register_feature",
]
