"""Ensembles beyond one machine: simulation, model sampling and synthesis as chunked tasks.

::

    from rgfield import ensembles
    from rgfield.fields.phi4 import Phi4, Phi4Config

    job = ensembles.Simulation(Phi4Config(Phi4(beta=0.68), 64))
    with ensembles.cluster(workers=2) as client:          # or scheduler="tcp://…", or none
        ds = ensembles.generate(job, 4096, "phi4_L64.ens", seed=1, client=client)

The samples depend on the seed and their index only (seeded blocks,
:func:`~rgfield.ensembles.store.block_seed`), not on the workers or the chunking; each chunk is
written by its worker as one netCDF file as soon as it is done, and a rerun resumes a stopped
ensemble (:mod:`rgfield.ensembles.store`). docs/scaling.md says how to run on a cluster.
"""

from rgfield.ensembles.cluster import cluster
from rgfield.ensembles.fitting import fit
from rgfield.ensembles.jobs import DiffusionSampling, Job, ModelSampling, Simulation, Synthesis
from rgfield.ensembles.store import block_seed, open_ensemble
from rgfield.ensembles.tasks import DEFAULT_BLOCK, generate

__all__ = [
    "DiffusionSampling",
    "DEFAULT_BLOCK",
    "Job",
    "ModelSampling",
    "Simulation",
    "Synthesis",
    "block_seed",
    "cluster",
    "fit",
    "generate",
    "open_ensemble",
]
