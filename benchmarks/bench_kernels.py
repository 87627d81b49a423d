"""A/B benchmark of the potential and quadratic families' chain kernels (issue 30).

The finest φ⁴-like conditional j = 1 (64 chains, details 3 × (L/2)²) at L = 32 … 256, potential +
quadratic families with the same θ, timed in this rgfield and in a base checkout imported as
``rgfield_base`` (benchmarks/bench_ab.py's importer), alternately in one process:

1. U(y | c) and ∇_y U as a chain evaluates them (``ExponentialModel.given(c)``, after the
   first call, which binds c);
2. one MALA step of the 64 chains (that evaluation, the proposal's noise and the test).

Reported per variable (a site of the details), with the ratio new / base (median of the ratios
of runs made one after the other, and their quartiles). Both versions are checked to give the
same U and ∇U before timing. Timings do not depend on the fields' values: Gaussian fields with
spectrum ∝ (k² + m²)⁻¹ (a free field's), θ a seeded draw of 0.01 × N(0, 1).

Then ``HierarchicalModel.sample`` of the same model file by both versions (a score-matching
fit of 500 φ⁴ Wolff fields at β_c, L = 64, 64 fields, 50 warm-up + 100 steps per scale),
checked to draw the same fields up to rounding.

Run: ``python benchmarks/bench_kernels.py --base /path/to/base/checkout [--label d6f4581]
[--sizes 32 64 128 256] [--repeats 7]``; writes the ``kernels`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import tempfile
from pathlib import Path

import torch
from _report import write_section
from bench_ab import alternate, load_base, ratio_quartiles
from bench_scatcov import BATCH as CHAINS
from bench_scatcov import finest_conditional

import rgfield
from rgfield.fields import phi4
from rgfield.rg import HierarchicalModel

FAMILIES = {"potential": {}, "quadratic": {}}


def chain_workloads(package, y: torch.Tensor, c: torch.Tensor, theta: torch.Tensor) -> dict:
    """The evaluation and the MALA step of ``package`` (rgfield or rgfield_base)."""
    scorematching = importlib.import_module(package.__name__ + ".rg.scorematching")
    energies = importlib.import_module(package.__name__ + ".energies")
    sampling = importlib.import_module(package.__name__ + ".rg.sampling")
    families = scorematching.new_families(FAMILIES, y, c, "db4")
    model = energies.ExponentialModel(families, theta)
    evaluate = model.given(c)
    kernel = sampling.kernel_for(model, c, y.shape[-1], 0.02)
    state = kernel.init(y)
    generator = torch.Generator().manual_seed(0)
    return {
        "evaluate": evaluate,
        "energy": lambda: evaluate(y),
        "step": lambda: kernel.step(state, generator),
    }


def kernel_rows(base, sizes: list[int], repeats: int) -> list[str]:
    rows = []
    for size in sizes:
        y, c = finest_conditional(size, power=1.0)
        count = sum(
            spec.n_features
            for spec in importlib.import_module("rgfield.rg.scorematching").new_families(
                FAMILIES, y, c, "db4"
            )
        )
        theta = 0.01 * torch.randn(count, generator=torch.Generator().manual_seed(1)).double()
        new, old = chain_workloads(rgfield, y, c, theta), chain_workloads(base, y, c, theta)
        (u_new, g_new), (u_old, g_old) = new["evaluate"](y), old["evaluate"](y)
        torch.testing.assert_close(u_new, u_old, rtol=1e-10, atol=1e-8)
        torch.testing.assert_close(g_new, g_old, rtol=1e-10, atol=1e-10)
        sites = y.numel()
        for name, label in (("energy", "U, ∇U"), ("step", "MALA step")):
            times = alternate({"base": old[name], "new": new[name]}, repeats)
            base_s, new_s = (statistics.median(times[k]) for k in ("base", "new"))
            q1, ratio, q3 = ratio_quartiles(times)
            rows.append(
                f"| {size} | {label} | {1e9 * base_s / sites:.1f} | {1e9 * new_s / sites:.1f}"
                f" | {ratio:.3f} | {q1:.3f}–{q3:.3f} |"
            )
            print(rows[-1], flush=True)
    return rows


def sample_row(base, repeats: int) -> str:
    """The whole coarse-to-fine draw of one model file by both versions."""
    config = phi4.Phi4Config(phi4.Phi4(0.9243518185929146), 64, sampler="wolff")
    fields = phi4.simulate(config, 500, seed=64, progress=False)["phi"]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.nc"
        HierarchicalModel(progress=False).fit(fields).save(path)
        new = HierarchicalModel.load(path, progress=False)
        old = base.rg.HierarchicalModel.load(path, progress=False)
    new.progress = old.progress = False
    options = {"steps": 100, "warmup": 50, "sampler": "mala"}
    difference = new.sample(16, seed=1, **options).fields - old.sample(16, seed=1, **options).fields
    if difference.abs().max() > 1e-6:
        raise RuntimeError("the two versions drew different fields; the A/B is void")
    times = alternate(
        {
            "base": lambda: old.sample(CHAINS, seed=1, **options),
            "new": lambda: new.sample(CHAINS, seed=1, **options),
        },
        repeats,
    )
    base_s, new_s = (statistics.median(times[k]) for k in ("base", "new"))
    q1, ratio, q3 = ratio_quartiles(times)
    return (
        f"| 64 | `sample`, {CHAINS} fields, 50 + 100 steps per scale (ms per field) |"
        f" {1e3 * base_s / CHAINS:.1f} | {1e3 * new_s / CHAINS:.1f} | {ratio:.3f} |"
        f" {q1:.3f}–{q3:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="base checkout (a git worktree)")
    parser.add_argument("--label", default="base", help="name of the base in the table")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each (7)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    base = load_base(args.base)
    rows = [
        f"| L | per variable, ns | {args.label} | this rgfield ({rgfield.__version__})"
        " | new / base | quartiles |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    rows += kernel_rows(base, args.sizes, args.repeats)
    rows.append(sample_row(base, args.repeats))
    print(rows[-1], flush=True)
    body = (
        f"Finest conditional (details 3 × (L/2)², {CHAINS} chains), potential + quadratic"
        f" families, {args.repeats} alternating runs of each version in one process (see the"
        " script's docstring); ns per variable of one evaluation of U and ∇U as a chain makes"
        " it, and of one MALA step; the last row is a whole draw of one φ⁴ model file.\n\n"
        + "\n".join(rows)
    )
    write_section("kernels", body)


if __name__ == "__main__":
    main()
