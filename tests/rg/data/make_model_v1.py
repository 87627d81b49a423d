"""Wrote model_v1.nc and the samples that file gave, with rgfield at commit e48e537 (model
format 1, the last release before rgfield.rg), run from the repository root:

    PYTHONPATH=<checkout of e48e537>/src python tests/rg/data/make_model_v1.py

tests/rg/test_persistence.py checks that this rgfield loads the file and draws the same fields.
"""

import numpy as np
import torch
from rgfield.hierarchy import HierarchicalModel

from rgfield.fields.gaussian import gaussian_field, lattice_free_field_spectrum

spectrum = lattice_free_field_spectrum(beta=1.0, m2=0.5)
fields = gaussian_field(spectrum, (8, 8), 200, seed=0, dtype=torch.float64)
model = HierarchicalModel(refine=1, refine_steps=10, progress=False).fit(fields, seed=1)
model.save("tests/rg/data/model_v1.nc", overwrite=True)
again = HierarchicalModel.load("tests/rg/data/model_v1.nc", progress=False)
x = again.sample(4, seed=7, steps=20, warmup=10).fields
np.save("tests/rg/data/model_v1_samples_seed7.npy", x.numpy())
