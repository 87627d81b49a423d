"""2D turbulence by the RG way: fit hierarchical models to vorticity fields and judge their
fields, side by side with microcanonical synthesis, against held-out flows.

    python examples/rg_turbulence.py --kind decaying --size 128 --train 500 --out decaying-rg
    python examples/rg_turbulence.py --kind turbulence --size 256 --train 500 --out forced-rg

simulates the training flows (seed S) and the held-out flows (seed S + 1): with ``decaying``
(the default) one freely decaying flow per field, from random vortices to t = 40, where
coherent vortices and filaments dominate (McWilliams 1984; vorticity excess kurtosis about 35
at 128², docs/turbulence.md; about 10 s per 128² flow on 2 cores); with ``turbulence``
snapshots of forced Kolmogorov flows. Pathways (``--pathways``): ``rg`` (potential + quadratic
families, the default of ``rgfield fit`` for turbulence), ``rg-scattering`` (quadratic +
scattering-covariance families with the curvature floor; docs/rg_fields.md) and
``microcanonical`` (scattering-spectra synthesis). Writes under OUT the comparison report
(report/: figures with example fields of every ensemble, spectra, pixel PDFs, increment
flatness, Minkowski functionals, peak counts, and the tables) and pathways.md (costs and, per
statistic, each pathway's largest |z| against the held-out flows). It is ``rgfield pathways``
with these defaults; any of that command's options (``--help``) overrides them.
"""

from __future__ import annotations

import sys

from rgfield.cli import main

DEFAULTS = [
    *("--kind", "decaying", "--size", "128", "--train", "500", "--held-out", "256"),
    *("--samples", "256", "--pathways", "rg", "rg-scattering", "microcanonical"),
    *("--out", "turbulence-rg"),
]
"""The issue-26 run: 500 training and 256 held-out decaying flows of 128², 256 fields per
pathway (the options given on the command line come after these, so they win)."""

if __name__ == "__main__":
    sys.exit(main(["pathways", *DEFAULTS, *sys.argv[1:]]))
