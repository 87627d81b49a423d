"""The wavelet conditional renormalisation group: a hierarchical model of fields.

:class:`HierarchicalModel` (fit, sample, energy, score, save, load) over the factors of
:mod:`rgfield.rg.scales`; fitting in :mod:`rgfield.rg.fitting` (score matching, then
:func:`match_moments` of :mod:`rgfield.rg.refinement` and exact one-variable models of
:mod:`rgfield.rg.scalar`), free energies in :mod:`rgfield.rg.free_energy`, sampling in
:mod:`rgfield.rg.sampling`, the mixing study in :mod:`rgfield.rg.mixing`, files in
:mod:`rgfield.rg.persistence`. See docs/architecture.md and docs/rg.md.
"""

from rgfield.rg.mixing import mixing
from rgfield.rg.model import HierarchicalModel
from rgfield.rg.parameters import kind_defaults
from rgfield.rg.refinement import match_moments
from rgfield.rg.sampling import SampleResult

__all__ = ["HierarchicalModel", "SampleResult", "kind_defaults", "match_moments", "mixing"]
