"""Simulators of physical fields: the training data of rgfield's models.

:mod:`rgfield.fields.phi4` — lattice φ⁴ (and the Gaussian free field as its special case).
:mod:`rgfield.fields.turbulence` — forced 2D Navier–Stokes turbulence, pseudo-spectral.
:mod:`rgfield.fields.cosmic` — the cosmic web: ΛCDM initial conditions, Zel'dovich/2LPT, CIC.
:mod:`rgfield.fields.gaussian` — stationary Gaussian fields with a given spectrum.
"""
