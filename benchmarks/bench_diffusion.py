"""Benchmark of the diffusion pathway: training throughput, sampler cost at equal fidelity,
memory, and the cost per field against the RG sampler.

1. Training throughput: fields per second of one Adam step (batch 32) of the EDM-preconditioned
   UNet, widths 8, 16 and 32 (3 levels), at 32², 64² and 128², and the peak resident memory of a
   process that runs a few such steps (each configuration in its own subprocess).
2. Sampler steps at equal fidelity: each sampler driven by the exact Wiener denoiser of a
   power-law Gaussian field of 32², over 8 … 1024 noise levels of the EDM grid; the fewest levels
   whose 2,048 fields have every spectrum shell within 2 % of the exact one (the discretisation
   error, with the statistical error per shell about 0.5 %), and the network evaluations that
   this costs. Times the time of one network evaluation per field (measured, width 16, 32²,
   batch 64), that gives the sampler's wall time per field at equal fidelity.
3. Cost per field against the RG sampler on the shipped φ⁴ ensemble (500 fields of 32²): the
   diffusion model's wall time per field (its defaults: Heun, 64 levels, width 16) against
   ``HierarchicalModel.sample`` with its defaults, both measured here.

Run: ``python benchmarks/bench_diffusion.py``; it prints the tables and writes them into
docs/benchmarks.md (section diffusion).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import torch
from _report import median_time, write_section

from rgfield import io
from rgfield.diffusion import (
    SAMPLERS,
    Counted,
    Preconditioned,
    UNet,
    VarianceExploding,
    WienerDenoiser,
)
from rgfield.stats import power_spectrum

SIZES, WIDTHS, BATCH = (32, 64, 128), (8, 16, 32), 32
LEVELS = (8, 16, 32, 64, 128, 256, 512, 1024)
FIDELITY = 0.02

_STEP = """
import json, resource, sys, time, torch
from rgfield.diffusion import Preconditioned, UNet
size, width, batch = (int(a) for a in sys.argv[1:4])
torch.manual_seed(0)
net = Preconditioned(UNet(width=width, levels=4))
opt = torch.optim.Adam(net.parameters())
x, sigma = torch.randn(batch, size, size), torch.rand(batch) + 0.1
def step():
    loss = (net(x + sigma[:, None, None] * torch.randn_like(x), sigma) - x).square().mean()
    opt.zero_grad(); loss.backward(); opt.step()
step(); step()
times = []
for _ in range(5):
    start = time.perf_counter(); step(); times.append(time.perf_counter() - start)
times.sort()
params = sum(p.numel() for p in net.parameters())
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": times[2], "parameters": params, "rss_mib": rss}))
"""


def training_throughput() -> str:
    rows = [
        "| size | width | parameters | s per step (batch 32) | fields/s | peak RSS |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for size in SIZES:
        for width in WIDTHS:
            out = subprocess.run(
                [sys.executable, "-c", _STEP, str(size), str(width), str(BATCH)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            rows.append(
                f"| {size}² | {width} | {r['parameters']:,} | {r['seconds']:.3f}"
                f" | {BATCH / r['seconds']:.0f} | {r['rss_mib']:.0f} MiB |"
            )
            print(rows[-1], flush=True)
    return "\n".join(rows)


def power_law(size: int) -> torch.Tensor:
    k = torch.fft.fftfreq(size, dtype=torch.float64)
    power = (k[:, None] ** 2 + k[None, :] ** 2 + 0.02) ** -1.0
    return power / power.mean()


def evaluation_seconds(size: int = 32, width: int = 16, batch: int = 64) -> float:
    """Seconds of one network evaluation per field (inference, batch 64)."""
    torch.manual_seed(0)
    net = Preconditioned(UNet(width=width, levels=4)).eval()
    x = torch.randn(batch, size, size)
    with torch.no_grad():
        return median_time(lambda: net(x, 1.0), repeats=7) / batch


def equal_fidelity(per_evaluation: float) -> str:
    wiener = WienerDenoiser(power_law(32))
    exact = torch.fft.ifft2((wiener.power * wiener.power.numel()).sqrt()).real
    reference = power_spectrum(exact[None]).values[0]
    rows = [
        f"| sampler | levels for ≤ {FIDELITY:.0%} | network evaluations | worst shell error"
        " | wall time per field (width 16, 32²) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, sampler in SAMPLERS.items():
        for levels in LEVELS:
            sigmas = VarianceExploding().sigmas(levels)
            generator = torch.Generator().manual_seed(0)
            x = float(sigmas[0]) * torch.randn(
                2048, 32, 32, generator=generator, dtype=torch.float64
            )
            counted = Counted(wiener)
            fields = sampler(counted, x, sigmas, generator=generator)
            error = np.abs(power_spectrum(fields).values.mean(0) / reference - 1).max()
            if error <= FIDELITY:
                break
        met = error <= FIDELITY
        rows.append(
            f"| {name} | {levels if met else f'> {LEVELS[-1]}'} | {counted.calls}"
            f" | {error:.3f} | {counted.calls * per_evaluation * 1e3:.0f} ms |"
        )
        print(rows[-1], flush=True)
    return "\n".join(rows)


def against_rg() -> str:
    from rgfield.diffusion import DiffusionModel
    from rgfield.rg import HierarchicalModel

    data = io.load(io.example_path())
    diffusion = DiffusionModel(steps=20, seed=0, progress=False)  # the default architecture
    diffusion.fit(data)  # the cost of sampling does not depend on how long it trained
    start = time.perf_counter()
    generated = diffusion.sample(256, seed=1, progress=False)
    diffusion_seconds = (time.perf_counter() - start) / 256
    rg = HierarchicalModel(progress=False).fit(data)
    start = time.perf_counter()
    rg.sample(256, seed=1)
    rg_seconds = (time.perf_counter() - start) / 256
    return (
        "| sampler (φ⁴ 32², 256 fields) | s per field | network or gradient evaluations |\n"
        "|---|---:|---:|\n"
        f"| diffusion, defaults: Heun 64 levels, width 16 ({diffusion.n_parameters_:,} parameters)"
        f" | {diffusion_seconds:.4f} | {generated.attrs['network_evaluations']} |\n"
        f"| RG `HierarchicalModel.sample` defaults (200 warm-up + 300 MALA steps per scale)"
        f" | {rg_seconds:.4f} | 500 per scale |"
    )


def main() -> None:
    training = training_throughput()
    per_evaluation = evaluation_seconds()
    print(
        f"one network evaluation (width 16, 32², batch 64): {per_evaluation * 1e3:.2f} ms per field"
    )
    fidelity = equal_fidelity(per_evaluation)
    rg = against_rg()
    print(rg)
    body = (
        "Training throughput of one Adam step of the UNet (4 levels) with EDM preconditioning;"
        " peak resident memory of a process running such steps:\n\n"
        f"{training}\n\n"
        f"Sampler levels needed for every spectrum shell of 2,048 fields of 32² within"
        f" {FIDELITY:.0%} of the exact one, each sampler driven by the exact Wiener denoiser"
        " (the discretisation error alone; a trained network adds its own), and the wall time"
        f" per field this costs with a width-16 UNet ({per_evaluation * 1e3:.2f} ms per field"
        " and evaluation, batch 64):\n\n"
        f"{fidelity}\n\n"
        "Cost per generated field on the shipped φ⁴ ensemble, in this process:\n\n"
        f"{rg}\n\nNo GPU was lent to this task: no GPU figures."
    )
    write_section("diffusion", body)


if __name__ == "__main__":
    main()
