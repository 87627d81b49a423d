"""The RG sampler on an accelerator: cost per independent φ⁴ field at β_c against Wolff.

Models and their training fields come from files (fitting is not timed here): for every L in
``--sizes``, ``DIR/model_{L}.nc`` (``HierarchicalModel.save``) and ``DIR/data_{L}.nc`` (Wolff
fields at β_c, ``rgfield simulate phi4 --sampler wolff``). For each L, in one process:

1. ``rgfield.rg.mixing`` on ``--device`` from equilibrium starts (the training fields, tiled to
   ``--chains``): τ_int per scale and the time per step of the whole batch, synchronised. The
   cost per independent field is Σ_j 2 τ_j × (time per step of scale j) / chains, as in
   bench_rg.py.
2. ``model.sample(chains, device=...)`` with the defaults of ``rgfield sample`` (200 warm-up +
   300 steps per scale): the wall time per field a user pays.
3. Wolff on this machine's CPU: τ_int of |M| and E from bench_phi4's cached pilots, the time
   per step timed now.

Run: ``python benchmarks/bench_rg_device.py --models DIR [--sizes 64 128 256] [--device cuda]
[--chains 256]``; writes the ``rg-device`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numba
import numpy as np
import torch
import xarray as xr
from _report import write_section
from bench_phi4 import cost_per_sample, critical_beta, pilot, seconds_per_step

from rgfield.fields import resolve_device
from rgfield.fields.phi4 import Phi4, Phi4Config, simulate
from rgfield.rg import HierarchicalModel, mixing


def tiled(fields: torch.Tensor, chains: int) -> torch.Tensor:
    """``chains`` starts from the training fields, repeated when there are fewer."""
    repeats = -(-chains // len(fields))
    return fields.repeat(repeats, 1, 1)[:chains]


def synchronized_seconds(device: torch.device, run) -> tuple[object, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, time.perf_counter() - start


def rg_row(folder: Path, size: int, device: torch.device, chains: int, steps: int) -> tuple:
    model = HierarchicalModel.load(folder / f"model_{size}.nc", progress=False)
    with xr.open_dataset(folder / f"data_{size}.nc") as data:
        fields = torch.as_tensor(data["phi"].values, dtype=torch.float64)
    starts = tiled(fields, chains)
    mixing(model, starts[:8], steps=10, warmup=2, device=device)  # kernels and caches warm
    study = mixing(model, starts, steps=steps, seed=size, device=device)
    tau = np.maximum(study["tau_energy"].values, study["tau_sum"].values)
    per_field = float((2 * tau * study["seconds_per_step"].values).sum() / chains)
    _, seconds = synchronized_seconds(
        device, lambda: model.sample(chains, seed=1, device=device, sampler="mala")
    )
    return tau, study["seconds_per_step"].values, per_field, seconds / chains, len(fields)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="folder of models and data")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--chains", type=int, default=256, help="RG chains in one batch")
    parser.add_argument("--steps", type=int, default=1000, help="MALA steps per scale measured")
    args = parser.parse_args()
    device = resolve_device(args.device, "--device")
    beta = critical_beta()
    threads = numba.get_num_threads()
    simulate(Phi4Config(Phi4(beta), 8, chains=2 * threads), 2 * threads, seed=0, progress=False)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    rows, costs = [], {"RG": [], "wolff": []}
    for size in args.sizes:
        tau, per_step, rg_cost, sample_cost, train = rg_row(
            args.models, size, device, args.chains, args.steps
        )
        record = pilot(beta, "wolff", size)
        wolff_cost, _ = cost_per_sample(
            record, seconds_per_step(beta, "wolff", size, record["chains"]), (1, 2)
        )
        costs["RG"].append(rg_cost)
        costs["wolff"].append(wolff_cost)
        row = (
            f"| {size} | {train} | {' '.join(f'{t:.1f}' for t in tau)} |"
            f" {' '.join(f'{s * 1e3:.2f}' for s in per_step)} | {rg_cost * 1e3:.3f} |"
            f" {sample_cost * 1e3:.2f} | {wolff_cost * 1e3:.2f} | {rg_cost / wolff_cost:.2f} |"
        )
        rows.append(row)
        print(row, flush=True)
    slopes = {
        k: np.polyfit(np.log(args.sizes), np.log(v), 1)[0] if len(v) > 1 else np.nan
        for k, v in costs.items()
    }
    lines = [
        f"### RG sampler on {name} (`--device {args.device}`) against Wolff on this CPU, β_c",
        "",
        f"{args.chains} RG chains in one batch (equilibrium starts: the training fields, tiled),"
        f" {args.steps} MALA steps per scale after 200 of warm-up; τ_int per scale coarse to"
        " fine (the larger of the energy's and the summed details'), the time per step of the"
        " whole batch per scale (synchronised), the cost per independent field Σ_j 2 τ_j t_j /"
        " chains; `sample` is the wall time per field of `model.sample(chains)` with the"
        " command's defaults (200 + 300 steps per scale, whatever τ_int). Wolff: τ_int from the"
        " cached pilots (bench_phi4.py), its step timed now on this machine's CPU"
        f" ({threads} numba threads). Models fitted on the CPU from `train` Wolff fields.",
        "",
        "| L | train | τ_int per scale | ms per step per scale | RG ms per independent field"
        " | `sample` ms per field | Wolff ms per independent field | RG / Wolff |",
        "|---:|---:|---|---|---:|---:|---:|---:|",
        *rows,
        "",
        f"Growth of the cost with L (least-squares slope of log cost on log L): RG"
        f" {slopes['RG']:.2f}, Wolff {slopes['wolff']:.2f}.",
    ]
    write_section("rg-device", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
