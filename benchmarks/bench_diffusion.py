"""Benchmark of the diffusion pathway: training throughput, sampler cost at equal fidelity,
memory, and the cost per field against the RG sampler.

1. Training throughput: fields per second of one Adam step (batch 32) of the EDM-preconditioned
   UNet, widths 8, 16 and 32 (4 levels), at 32², 64² and 128², and the peak resident memory of a
   process that runs a few such steps (each configuration in its own subprocess).
2. Sampler steps at equal fidelity: each sampler driven by the exact Wiener denoiser of
   Gaussian data, over 8 … 1024 noise levels of the EDM grid; the fewest levels at which the
   variance it generates is within 2 % of the data's for every mode variance P of a power-law
   spectrum of 32² (P from 0.22 to 5.7; 16 values, each from 131,072 samples, statistical error
   0.4 %). A sampler acts on each Fourier mode of a Gaussian field separately, so this is its
   spectrum error at every shell, without the noise of the low shells' few modes. Times the
   time of one network evaluation per field (measured, width 16, 32², batch 64), that gives
   the sampler's wall time per field at equal fidelity.
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

import torch
from _report import median_time, write_section

from rgfield import io
from rgfield.diffusion import (
    SAMPLERS,
    Counted,
    Preconditioned,
    UNet,
    VarianceExploding,
)

SIZES, WIDTHS, BATCH = (32, 64, 128), (8, 16, 32), 32
LEVELS = (8, 16, 32, 64, 128, 256, 512, 1024)
FIDELITY = 0.02
VARIANCES = 16  # mode variances spanning the spectrum's range
FIELDS_PER_VARIANCE = 128  # 131,072 samples per variance: s.e. of its estimate 0.4 %

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


def mode_variances(size: int = 32) -> torch.Tensor:
    """The per-mode variances P of a power-law Gaussian field of size² (mean 1): P ∝
    (|k|² + 0.02)⁻¹, k in cycles per pixel: 0.22 to 5.7 times the mean."""
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


class ModeWiener:
    """The exact denoiser of Gaussian data whose field ``b`` is white with variance P_b:
    D(x, σ) = P_b / (P_b + σ²) x (Wiener). Every sampler acts on each Fourier mode of a
    Gaussian field separately, and a mode of variance P sees exactly this denoiser, so one run
    over fields of P_b spanning a spectrum's range gives the sampler's error at every mode of
    it, each from size² samples instead of the handful of modes in a low shell."""

    def __init__(self, variances: torch.Tensor) -> None:
        self.variances = variances[:, None, None]

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s2 = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1) ** 2
        return self.variances / (self.variances + s2) * x


def equal_fidelity(per_evaluation: float) -> str:
    power = mode_variances(32)
    variances = torch.logspace(
        float(power.min().log10()), float(power.max().log10()), VARIANCES, dtype=torch.float64
    ).repeat_interleave(FIELDS_PER_VARIANCE)
    rows = [
        f"| sampler | levels for ≤ {FIDELITY:.0%} | network evaluations | worst variance error"
        " | wall time per field (width 16, 32²) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, sampler in SAMPLERS.items():
        for levels in LEVELS:
            sigmas = VarianceExploding().sigmas(levels)
            generator = torch.Generator().manual_seed(0)
            x = float(sigmas[0]) * torch.randn(
                len(variances), 32, 32, generator=generator, dtype=torch.float64
            )
            counted = Counted(ModeWiener(variances))
            fields = sampler(counted, x, sigmas, generator=generator)
            ratio = (
                fields.square().mean((1, 2)).reshape(VARIANCES, -1).mean(1)
                / variances[::FIELDS_PER_VARIANCE]
            )
            error = float((ratio - 1).abs().max())
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
        f"Sampler levels needed for the variance of every Fourier mode of a power-law Gaussian"
        f" field of 32² (mode variances 0.22 … 5.7) to be within {FIDELITY:.0%} of the exact one,"
        " each sampler driven by the exact Wiener denoiser (the discretisation error alone; a"
        " trained network adds its own), and the wall time"
        f" per field this costs with a width-16 UNet ({per_evaluation * 1e3:.2f} ms per field"
        " and evaluation, batch 64):\n\n"
        f"{fidelity}\n\n"
        "Cost per generated field on the shipped φ⁴ ensemble, in this process:\n\n"
        f"{rg}\n\nNo GPU was lent to this task: no GPU figures."
    )
    write_section("diffusion", body)


if __name__ == "__main__":
    main()
