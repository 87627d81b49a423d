"""A/B benchmark: this rgfield against an earlier checkout of it, in one process.

A refactoring must not make the hot paths slower. This script imports a base checkout's
``src/rgfield`` under the name ``rgfield_base`` (its own ``rgfield`` imports rewritten on the
fly), builds the same workloads with both, and times them alternately, A B, B A, A B …, so that both
see the same machine load. Workloads:

1. wavelet pyramid: decompose + reconstruct of a 16×256×256 float32 batch, 6 levels, db4;
2. sampler kernels, 20 steps each: MALA and BlockMALA on an RG-like conditional (16 chains of
   3 × 32², float32, per-cell terms ½ y (Ay) + 0.1 y⁴, Ay = y + 0.2 Σ_nn y), HMC on φ⁴ at
   β = 0.9, L = 64, 8 chains, 10 leapfrog steps (the base takes energies, this version log
   densities: the same arithmetic up to a sign);
3. φ⁴ ``simulate`` with Metropolis and HMC, L = 32 and 64, 8 chains, 16 samples, fixed
   thermalisation and spacing (no pilot), so both versions run the same number of steps; Wolff
   chains at a fixed step size and cluster count (see :func:`wolff_chain_workloads`);
4. RG sampling: a model fitted by each version to the shipped L = 32 φ⁴ ensemble (score matching;
   the two fits are checked to give identical θ), then ``sample(200, steps=100, warmup=50)``
   with MALA and with the block sampler (checked to give the same fields up to rounding).

Run: ``python benchmarks/bench_ab.py --base /path/to/base/checkout [--label e48e537]``; it
prints the table and writes it into docs/benchmarks.md (section ab).
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.util
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _report import write_section

import rgfield
from rgfield import io, wavelets

_IMPORT = re.compile(r"^(\s*)(from|import)(\s+)rgfield\b", re.M)


class _Renamed(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``rgfield_base.*`` in a base checkout's src/rgfield, with its imports renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(self, name, path, target=None):
        if name != "rgfield_base" and not name.startswith("rgfield_base."):
            return None
        parts = name.split(".")[1:]
        base = self.root.joinpath(*parts)
        if (base / "__init__.py").exists():
            return importlib.util.spec_from_file_location(
                name, base / "__init__.py", loader=self, submodule_search_locations=[str(base)]
            )
        if base.with_suffix(".py").exists():
            return importlib.util.spec_from_file_location(
                name, base.with_suffix(".py"), loader=self
            )
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        source = Path(module.__file__).read_text()
        source = _IMPORT.sub(r"\1\2\3rgfield_base", source)
        source = source.replace("import rgfield_base\n", "import rgfield_base as rgfield\n")
        exec(compile(source, module.__file__, "exec"), module.__dict__)


def load_base(checkout: Path):
    """The package of ``checkout``/src/rgfield as ``rgfield_base``."""
    sys.meta_path.insert(0, _Renamed(checkout / "src" / "rgfield"))
    return importlib.import_module("rgfield_base")


def alternate(workloads: dict[str, callable], repeats: int) -> dict[str, list[float]]:
    """Wall times of each workload, run in turn ``repeats`` times after one warm-up.

    The order alternates (A B, B A, A B, ...), so that whatever a run leaves behind for the
    next (heap, caches, a thread pool that is awake or asleep) does not favour one version."""
    for fn in workloads.values():
        fn()
    times = {name: [] for name in workloads}
    for repeat in range(repeats):
        order = list(workloads.items())
        for name, fn in order if repeat % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def ratio_quartiles(times: dict[str, list[float]]) -> tuple[float, float, float]:
    """Quartiles of new / base over the pairs of runs made one after the other."""
    ratios = [new / base for new, base in zip(times["new"], times["base"], strict=True)]
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    return q1, median, q3


def wavelet_workloads(round_trips: int = 10) -> dict[str, callable]:
    """``round_trips`` decompose + reconstruct per timed run: one takes ~2 ms, less than the
    jitter of the two-thread pool, which a run of ten averages down."""
    x = torch.randn(16, 256, 256, generator=torch.Generator().manual_seed(0))

    def run(module):
        def trips():
            for _ in range(round_trips):
                module.reconstruct(module.decompose(x, 6, "db4"))

        return trips

    return {"base": run(importlib.import_module("rgfield_base.wavelets")), "new": run(wavelets)}


def rg_like_energy(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cell energies (chains, n, n) and ∇U of the RG-like conditional."""
    ay = y + 0.2 * sum(torch.roll(y, s, d) for s in (1, -1) for d in (-2, -1))
    return (0.5 * y * ay + 0.1 * y**4).sum(1), ay + 0.4 * y**3


def rg_like_logdensity(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """−(per-cell energies) and −∇U as a user writes a log-density: the sign in the terms, at
    the cost of the energy (and bit for bit its negative: negation is exact)."""
    minus_ay = -y - 0.2 * sum(torch.roll(y, s, d) for s in (1, -1) for d in (-2, -1))
    return (0.5 * y * minus_ay - 0.1 * y**4).sum(1), minus_ay - 0.4 * y**3


def total(density_and_grad):
    def summed(y):
        density, grad = density_and_grad(y)
        return density.sum((-2, -1)), grad

    return summed


def steps_of(kernel, position: torch.Tensor, steps: int = 20):
    """A workload: ``steps`` transitions of ``kernel`` from a fixed state and seed."""
    state = kernel.init(position)

    def run():
        generator = torch.Generator().manual_seed(0)
        current = state
        for _ in range(steps):
            current, _ = kernel.step(current, generator)

    return run


def kernel_workloads() -> dict[str, dict[str, callable]]:
    from rgfield import mcmc
    from rgfield.fields.phi4 import Phi4

    old = importlib.import_module("rgfield_base.samplers")
    old_phi4 = importlib.import_module("rgfield_base.fields.phi4").Phi4
    y = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    phi = torch.from_numpy(np.random.default_rng(0).standard_normal((8, 64, 64)))
    model, old_model = Phi4(0.9), old_phi4(0.9)
    return {
        "MALA, RG-like conditional 16 × 3 × 32², 20 steps": {
            "base": steps_of(old.MALA(total(rg_like_energy), 0.05), y),
            "new": steps_of(mcmc.MALA(total(rg_like_logdensity), 0.05), y),
        },
        "BlockMALA, same, 4 × 4 blocks, 20 sweeps": {
            "base": steps_of(old.BlockMALA(rg_like_energy, 0.05, block=4), y),
            "new": steps_of(mcmc.BlockMALA(rg_like_logdensity, 0.05, block=4), y),
        },
        "HMC, φ⁴ L = 64, 8 chains, 20 trajectories of 10 leapfrog steps": {
            "base": steps_of(old.HMC(old_model.energy, old_model.grad, 0.1, 10), phi),
            "new": steps_of(mcmc.HMC(model.logdensity_and_grad, 0.1, 10), phi),
        },
    }


def simulate_workloads(sampler: str, size: int = 32) -> dict[str, callable]:
    from rgfield.fields.phi4 import Phi4, Phi4Config, simulate

    old = importlib.import_module("rgfield_base.fields.phi4")
    chains = {"thermalization": 200, "spacing": 20, "chains": 8}
    config = Phi4Config(Phi4(0.9), size, sampler, **chains)
    return {
        "base": lambda: old.simulate(
            old.Phi4(0.9), size, 16, sampler=sampler, seed=3, progress=False, **chains
        ),
        "new": lambda: simulate(config, 16, seed=3, progress=False),
    }


def wolff_chain_workloads(size: int) -> dict[str, callable]:
    """240 Wolff steps (a sweep and 4 clusters) of 8 chains at a fixed step size, from the same
    fields and random states, checked to end in identical fields. (The versions' warm-ups tune
    the cluster count from one step's noisy mean cluster size, 4 to 12 clusters for the same
    sampler and seed, so ``simulate`` would compare more than the cost of a step.)"""
    from rgfield.fields.lattice import LatticeState, Wolff, new_rng_states
    from rgfield.fields.phi4 import Phi4, _Chains

    old = importlib.import_module("rgfield_base.fields.phi4")

    def base_chains():
        chains = old._Chains(old.Phi4(0.9), "wolff", size, 8, 3, "cpu")
        chains.step[:], chains.clusters = 1.25, 4
        return chains

    def new_chains():
        chains = _Chains(Phi4(0.9), "wolff", size, 8, 3, "cpu")
        rng = np.random.default_rng(3)  # the fields and random states of the base's chains
        fields = rng.standard_normal((8, size, size))
        chains.kernel = Wolff(Phi4(0.9), np.full(8, 1.25), clusters=4)
        chains.state = LatticeState(fields, Phi4(0.9), new_rng_states(8, rng.integers(2**63)))
        return chains

    a, b = base_chains(), new_chains()
    a.advance(240)
    b.advance(240)
    if not np.array_equal(a.fields, b.fields):
        raise RuntimeError("the two versions' Wolff chains differ; the A/B is void")
    return {"base": lambda: base_chains().advance(240), "new": lambda: new_chains().advance(240)}


def fitted_models():
    """The same score-matching fit by both versions, checked to give identical θ."""
    from rgfield.rg import HierarchicalModel

    base_model_class = importlib.import_module("rgfield_base.hierarchy").HierarchicalModel
    data = io.load(io.example_path("phi4_L32_beta0.9244.nc"))
    new = HierarchicalModel(progress=False).fit(data)
    old = base_model_class(progress=False).fit(data)
    for a, b in zip(new.conditionals_, old.conditionals_, strict=True):
        if not torch.equal(a.theta, b.theta):
            raise RuntimeError("the two versions fitted different models; the A/B is void")
    return old, new


def rg_workloads(old, new, sampler: str) -> dict[str, callable]:
    options = {"steps": 100, "warmup": 50, "sampler": sampler}
    # the same draws up to rounding: the kernels may fuse y + h·x differently (a different
    # Metropolis decision would move a field by O(0.1), not 1e-6)
    difference = new.sample(20, seed=1, **options).fields - old.sample(20, seed=1, **options).fields
    if difference.abs().max() > 1e-6:
        raise RuntimeError("the two versions drew different fields; the A/B is void")
    return {
        "base": lambda: old.sample(200, seed=1, **options),
        "new": lambda: new.sample(200, seed=1, **options),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="base checkout (a git worktree)")
    parser.add_argument("--label", default="base", help="name of the base in the table")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each (5)")
    args = parser.parse_args()
    load_base(args.base)
    rows = [
        f"| workload | {args.label} | this rgfield ({rgfield.__version__}) | new / base"
        " | quartiles |",
        "|---|---:|---:|---:|---:|",
    ]
    old, new = fitted_models()
    cases = {
        "wavelet decompose + reconstruct, 16×256², 6 levels, 10 times": wavelet_workloads(),
        **kernel_workloads(),
        **{
            f"φ⁴ simulate, {sampler}, L = {size}, 8 chains × 240 steps": simulate_workloads(
                sampler, size
            )
            for sampler in ("metropolis", "hmc")
            for size in (32, 64)
        },
        **{
            f"φ⁴ Wolff chains, 4 clusters, L = {size}, 8 chains × 240 steps": (
                wolff_chain_workloads(size)
            )
            for size in (32, 64)
        },
        "RG sample 200 × 32², MALA, 150 steps per scale": rg_workloads(old, new, "mala"),
        "RG sample 200 × 32², block MALA, 150 steps per scale": rg_workloads(old, new, "block"),
    }
    for name, workloads in cases.items():
        times = alternate(workloads, args.repeats)
        base, new = (statistics.median(times[k]) for k in ("base", "new"))
        q1, ratio, q3 = ratio_quartiles(times)
        rows.append(f"| {name} | {base:.3f} s | {new:.3f} s | {ratio:.3f} | {q1:.3f}–{q3:.3f} |")
        print(rows[-1], flush=True)
    body = (
        f"Medians of {args.repeats} alternating runs (base then new, new then base, …) in one"
        " process; new / base is the median of the ratios of runs made one after the other, with"
        " their quartiles (the spread the machine's noise gives). The base checkout is imported as"
        " `rgfield_base`. The RG rows sample models that the two versions fitted identically"
        " and draw the same fields up to rounding.\n\n" + "\n".join(rows)
    )
    write_section("ab", body)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
