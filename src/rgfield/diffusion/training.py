"""Denoising score matching: the training loop, its checkpoints and its diagnostics.

The loss of a denoiser D on data z (whitened fields, σ_data = 1) is EDM's (Karras et al. 2022,
eq. 8 with their λ):

    L = E_{σ, z, n} λ(σ) ‖D(z + σ n, σ) − z‖² / (H W),   λ(σ) = 1/c_out(σ)²
                                                       = (σ² + σ_d²)/(σ σ_d)² (scalar skip),

σ drawn from the noise process's training distribution, c_out the denoiser's output scale
(:meth:`Preconditioned.loss_weight`). λ makes the loss of the optimal denoiser O(1) at every σ
(it is the loss of the network's own target). With the data's power spectrum P_k
(``loss_power``) each Fourier mode's error is weighted by the inverse of its Wiener error
instead,

    L = E Σ_k λ_k(σ) |F(D − z)_k|² / (H W)²,   λ_k(σ) = (P_k + σ²)/(P_k σ²),

so that a mode of little power (the few longest waves carry a small share of ‖D − z‖²) counts
as much, relative to its Gaussian error, as any other. Every positive weighting of the squared
error has the same minimiser, the posterior mean E[z | z + σ n]; with P ≡ 1 this is λ(σ) of the
scalar skip (Parseval). Minimised with Adam;
the model kept is an exponential moving average (EMA) of the weights.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from rgfield._progress import progress as progress_bar
from rgfield._validate import check_positive_integer
from rgfield.diffusion.augmentation import Symmetries
from rgfield.diffusion.denoisers import Preconditioned
from rgfield.diffusion.processes import NoiseProcess

__all__ = [
    "CHECKPOINT_FORMAT",
    "LR_SCHEDULES",
    "WEIGHTINGS",
    "Training",
    "learning_rate",
    "mse_by_sigma",
    "train",
    "weighted_loss",
]

CHECKPOINT_FORMAT = "rgfield.diffusion.checkpoint/1"

WEIGHTINGS = ("edm", "spectral")
"""The training losses: EDM's λ(σ), or λ_k(σ) per Fourier mode (:func:`weighted_loss`)."""

LR_SCHEDULES = ("constant", "cosine")
"""Adam's learning rate over the steps: constant, or η_t = η ½ (1 + cos(π t / T)) (T steps)."""


@dataclass
class Training:
    """What :func:`train` returns.

    Attributes
    ----------
    ema : AveragedModel
        The EMA of the denoiser's weights (``ema.module`` is a :class:`Preconditioned`).
    losses : numpy.ndarray (steps,)
        The weighted loss of each step's batch.
    sigmas, example_losses : numpy.ndarray (steps × batch,)
        σ and the weighted loss of every training example, for the loss-versus-σ diagnostic.
    seconds : float
        Wall time of all the steps, those before the checkpoint a run resumed from included.
    """

    ema: AveragedModel
    losses: np.ndarray
    sigmas: np.ndarray
    example_losses: np.ndarray
    seconds: float


def train(
    denoiser: Preconditioned,
    fields: torch.Tensor,
    process: NoiseProcess,
    *,
    steps: int,
    batch: int = 32,
    lr: float = 1e-3,
    lr_schedule: str = "constant",
    ema: float = 0.999,
    symmetries: Symmetries | None = None,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 500,
    loss_power: torch.Tensor | None = None,
    progress: bool = True,
) -> Training:
    """Train ``denoiser`` (in place) on ``fields`` (N, H, W), on their device.

    Every step draws ``batch`` fields with replacement, moves each by a random element of
    ``symmetries``, draws σ from ``process.training_sigmas`` and noise, and takes one Adam step
    on the loss of the module docstring; everything random comes from one torch generator
    seeded by ``seed``. With ``checkpoint``, the whole state (weights, EMA, Adam, generator,
    losses) is written there every ``checkpoint_every`` steps and at the end, atomically; a
    run given an existing checkpoint of the same training (same data, options and seed)
    resumes from it and ends with the same weights as an unbroken run (with the ``"cosine"``
    rate, which depends on ``steps``, only a run of the same length resumes it).
    ``loss_power``: P_k of the fields (H, W), for the per-mode weighting of
    :func:`weighted_loss`.
    """
    for name, value in (("steps", steps), ("batch", batch), ("checkpoint_every", checkpoint_every)):
        check_positive_integer(value, name)
    if not 0 <= ema < 1 or not lr > 0:
        raise ValueError(f"ema must be in [0, 1) and lr positive; got {ema!r}, {lr!r}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}; got {lr_schedule!r}")
    symmetries = Symmetries() if symmetries is None else symmetries
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(denoiser.parameters(), lr=lr)
    averaged = AveragedModel(denoiser, multi_avg_fn=get_ema_multi_avg_fn(ema), use_buffers=True)
    identity = _fingerprint(fields, process, batch, lr, ema, symmetries, seed, denoiser, loss_power)
    if lr_schedule != "constant":  # a cosine rate depends on the length: a longer run is another
        identity = hashlib.sha256(f"{identity} {lr_schedule} {steps}".encode()).hexdigest()
    done, before, losses, sigmas, example_losses = 0, 0.0, [], [], []
    if checkpoint is not None and Path(checkpoint).exists():
        state = _read_checkpoint(checkpoint, identity)
        denoiser.load_state_dict(state["network"])
        averaged.load_state_dict(state["ema"])
        optimiser.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        done, before = int(state["step"]), float(state.get("seconds", 0.0))
        losses, sigmas, example_losses = ([state[k]] for k in ("losses", "sigmas", "example"))
    if done > steps:
        raise ValueError(f"steps: the checkpoint has {done} steps already, more than {steps}")
    denoiser.train()
    start = time.perf_counter()
    with progress_bar("training", total=steps, enabled=progress, unit="step") as on_step:
        on_step(done)
        for step in range(done, steps):
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(lr, lr_schedule, step, steps)
            loss, sigma, per_example = _step(
                denoiser, optimiser, fields, process, batch, symmetries, generator, loss_power
            )
            averaged.update_parameters(denoiser)
            losses.append(loss.reshape(1))
            sigmas.append(sigma)
            example_losses.append(per_example)
            on_step(status=f"loss {float(loss):.3g}" if step % 10 == 0 else None)
            if checkpoint is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
                state = {
                    "format": CHECKPOINT_FORMAT,
                    "identity": identity,
                    "step": step + 1,
                    "seconds": before + time.perf_counter() - start,
                    "network": denoiser.state_dict(),
                    "ema": averaged.state_dict(),
                    "optimizer": optimiser.state_dict(),
                    "generator": generator.get_state(),
                    "losses": torch.cat(losses),
                    "sigmas": torch.cat(sigmas),
                    "example": torch.cat(example_losses),
                }
                _write_checkpoint(checkpoint, state)
    seconds = before + time.perf_counter() - start
    averaged.eval()
    cat = lambda parts: torch.cat(parts).numpy() if parts else np.zeros(0)  # noqa: E731
    return Training(averaged, cat(losses), cat(sigmas), cat(example_losses), seconds)


def learning_rate(lr: float, schedule: str, step: int, steps: int) -> float:
    """Adam's rate at ``step`` (from 0) of ``steps``: η, or η ½ (1 + cos(π t / T)) (cosine)."""
    return lr if schedule == "constant" else lr * (1 + math.cos(math.pi * step / steps)) / 2


def weighted_loss(
    denoiser: Preconditioned,
    residual: torch.Tensor,
    sigma: torch.Tensor,
    power: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss of each example, λ(σ) ‖r‖²/(H W), or Σ_k λ_k(σ) |F(r)_k|²/(H W)² with a
    spectrum ``power`` (the module docstring), for residuals r = D − z (B, H, W) at σ (B,)."""
    if power is None:
        return denoiser.loss_weight(sigma) * residual.square().mean((1, 2))
    p, s2 = power.to(residual), sigma[:, None, None] ** 2
    modes = torch.fft.fft2(residual).abs().square() / residual[0].numel()
    return (modes * (p + s2) / (p * s2)).mean((1, 2))


def _step(denoiser, optimiser, fields, process, batch, symmetries, generator, loss_power):
    """One Adam step; returns (batch loss, σ, per-example losses), detached on the CPU."""
    index = torch.randint(len(fields), (batch,), generator=generator)
    clean = symmetries.apply(fields[index.to(fields.device)].cpu(), generator)
    sigma = process.training_sigmas(batch, generator)
    noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
    device = next(denoiser.parameters()).device
    clean, noise = clean.to(device), noise.to(device)
    s = sigma.to(device=device, dtype=clean.dtype)
    denoised = denoiser(clean + s[:, None, None] * noise, s)
    per_example = weighted_loss(denoiser, denoised - clean, s, loss_power)
    loss = per_example.mean()
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return loss.detach().cpu(), sigma.float(), per_example.detach().cpu().float()


@torch.no_grad()
def mse_by_sigma(
    denoiser, fields: torch.Tensor, sigmas, seed: int = 0, batch: int = 64
) -> np.ndarray:
    """The denoising mean squared error per pixel, E‖D(z + σ n, σ) − z‖²/(H W), of
    ``denoiser`` on ``fields`` (N, H, W) at each σ of ``sigmas`` (one noise draw per field)."""
    generator = torch.Generator().manual_seed(seed)
    errors = []
    for sigma in sigmas:
        total = 0.0
        for i in range(0, len(fields), batch):
            clean = fields[i : i + batch]
            noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
            denoised = denoiser(clean + float(sigma) * noise.to(clean.device), float(sigma))
            total += float((denoised - clean).square().mean((1, 2)).sum())
        errors.append(total / len(fields))
    return np.array(errors)


def _fingerprint(fields, process, batch, lr, ema, symmetries, seed, denoiser, loss_power) -> str:
    """A digest of everything that determines a training run but its length."""
    digest = hashlib.sha256(fields.detach().cpu().float().numpy().tobytes())
    settings = (
        repr(process),
        batch,
        lr,
        ema,
        symmetries.to_dict(),
        seed,
        getattr(denoiser.network, "config", None),
        denoiser.sigma_data,
    )
    digest.update(repr(settings).encode())
    for label, power in ((b"skip", denoiser.power), (b"loss", loss_power)):
        if power is not None:  # absent: the digest of a run before these options existed
            digest.update(label + power.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def _write_checkpoint(path, state: dict) -> None:
    """The training state, written to a temporary file and renamed onto ``path``."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_checkpoint(path, identity: str) -> dict:
    """A checkpoint's state (tensors and plain values only: ``weights_only`` never unpickles
    an arbitrary object), refused unless it is one of this very training."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a corrupt or foreign file
        raise ValueError(
            f"checkpoint: {path} is not a readable training checkpoint ({err})"
        ) from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint: {path} is not an rgfield diffusion training checkpoint")
    if state.get("identity") != identity:
        raise ValueError(
            f"checkpoint: {path} belongs to another training (different data, options or seed);"
            " give a new checkpoint path or delete it"
        )
    return state
