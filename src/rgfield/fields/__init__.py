"""Simulators of physical fields: the training data of rgfield's models.

:mod:`rgfield.fields.phi4` — lattice φ⁴ (and the Gaussian free field as its special case).
"""
