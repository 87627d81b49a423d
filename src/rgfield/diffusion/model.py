"""The diffusion pathway's estimator: ``DiffusionModel(...).fit(data).sample(n)``."""

from __future__ import annotations

import inspect
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from rgfield import io
from rgfield._progress import progress as progress_bar
from rgfield._validate import check_positive_integer, fresh_seed
from rgfield.diffusion.augmentation import Symmetries, symmetries_for
from rgfield.diffusion.denoisers import SKIPS, Ensemble, Preconditioned, UNet
from rgfield.diffusion.processes import NoiseProcess, make_process
from rgfield.diffusion.samplers import SAMPLERS
from rgfield.diffusion.training import LR_SCHEDULES, WEIGHTINGS, Training, train
from rgfield.diffusion.whitening import NOISES, fit_whitening

__all__ = [
    "CHURN_SAMPLERS",
    "DEFAULT_CHURN",
    "DEFAULT_SAMPLER",
    "Counted",
    "DiffusionModel",
    "default_churn",
]

SIGMA_BINS = np.geomspace(1e-3, 1e2, 16)
"""Edges of the σ bins of the loss-versus-σ diagnostic."""

CHURN_SAMPLERS = ("euler", "heun", "euler_maruyama")
"""The samplers that take EDM's stochastic churn."""

DEFAULT_CHURN = 10.0
"""S_churn of :meth:`DiffusionModel.sample` with ``heun`` and ``euler`` (docs/diffusion.md)."""

DEFAULT_SAMPLER = "heun"
"""The sampler of :meth:`DiffusionModel.sample` when none is named."""


def default_churn(sampler: str) -> float:
    """S_churn of :meth:`DiffusionModel.sample` when none is given: :data:`DEFAULT_CHURN` for
    the probability-flow ODE samplers ``heun`` and ``euler``, 0 for the others."""
    return DEFAULT_CHURN if sampler in ("euler", "heun") else 0.0


@dataclass
class Counted:
    """A denoiser that counts its calls (each call is one network evaluation of a batch)."""

    denoiser: object
    calls: int = 0

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        self.calls += 1
        return self.denoiser(x, sigma)


class DiffusionModel:
    """A denoising diffusion model of an ensemble of 2D periodic fields.

    The fields are whitened (:mod:`~rgfield.diffusion.whitening`: ``noise="white"`` or
    ``"spectrum"``), a :class:`~rgfield.diffusion.UNet` with EDM preconditioning (its skip
    scalar, or the Wiener filter of the training fields' spectrum) is trained by
    denoising score matching on them (:func:`~rgfield.diffusion.train`), and new fields are
    drawn by integrating the reverse process from noise (:data:`~rgfield.diffusion.SAMPLERS`)
    and colouring the result. docs/diffusion.md has the equations and the defaults' reasons.

    Parameters
    ----------
    process : "ve", "vp" or a noise process
        The noise process (:mod:`~rgfield.diffusion.processes`).
    noise : "white" or "spectrum"
        White noise, or noise with the training fields' power spectrum.
    skip : "scalar" or "wiener"
        The denoiser's skip connection: EDM's c_skip(σ) x, or the Wiener filter of the training
        fields' power spectrum (:class:`~rgfield.diffusion.Preconditioned`), with which the
        untrained network already draws Gaussian fields of the data's spectrum.
    weighting : "edm" or "spectral"
        The training loss: EDM's λ(σ) on the squared error, or each Fourier mode's error
        weighted by the inverse of its Wiener error under the training fields' spectrum
        (:func:`~rgfield.diffusion.weighted_loss`), so the longest waves count as much as the
        rest (the default: docs/diffusion.md, "Physics acceptance").
    width, levels : int
        The UNet's channels at the finest level and its number of resolutions.
    bias : bool
        False: the bias-free, noise-blind UNet.
    networks : int
        K UNets trained alike from the seeds ``seed_``, ``seed_ + 1``, …, their outputs
        averaged (:class:`~rgfield.diffusion.Ensemble`): the spread from one trained network
        to the next falls as 1/√K where it is independent; training and sampling cost K
        times one network's.
    steps, batch, lr, ema : training steps, fields per step, Adam's learning rate, EMA decay.
    lr_schedule : "constant" or "cosine"
        Adam's learning rate constant, or decaying to 0 as ½ (1 + cos(π t / steps)) (the
        default).
    symmetries : Symmetries, optional
        Augmentation group (default: by the data's ``generator`` attr, :func:`symmetries_for`).
    seed : int, optional
        Seed of the weights' initialisation and of the training (default: fresh entropy, recorded
        in ``seed_``).
    device : str
        Torch device of training and sampling.
    progress : bool
        Progress bars.

    Attributes
    ----------
    whitening_ : Whitening
    denoiser_ : Ensemble
        The K networks' EMA weights (``denoiser_.members``, each a :class:`Preconditioned`),
        in evaluation mode.
    process_ : noise process
    symmetries_ : Symmetries
    history_ : xarray.Dataset
        ``loss`` per step (mean over the networks) and ``loss_by_sigma`` (mean weighted loss
        of the last half of training per σ bin, the networks' examples pooled, their number
        ``examples_by_sigma``).
    training_seconds_ : float
    n_parameters_ : int
    size_ : tuple of int
    data_attrs_ : dict
        ``generator``, ``source`` and ``variable`` of the training data, and its size.
    seed_ : int
    """

    def __init__(
        self,
        process: str | NoiseProcess = "ve",
        noise: str = "white",
        skip: str = "scalar",
        weighting: str = "spectral",
        width: int = 16,
        levels: int = 4,
        bias: bool = True,
        networks: int = 1,
        steps: int = 4000,
        batch: int = 32,
        lr: float = 1e-3,
        lr_schedule: str = "cosine",
        ema: float = 0.999,
        symmetries: Symmetries | None = None,
        seed: int | None = None,
        device: str = "cpu",
        progress: bool = True,
    ) -> None:
        self.process = process
        self.noise = noise
        self.skip = skip
        self.weighting = weighting
        self.width = width
        self.levels = levels
        self.bias = bias
        self.networks = networks
        self.steps = steps
        self.batch = batch
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.ema = ema
        self.symmetries = symmetries
        self.seed = seed
        self.device = device
        self.progress = progress

    def get_params(self) -> dict:
        """The constructor parameters by name."""
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self"}

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, data, checkpoint: str | os.PathLike | None = None) -> DiffusionModel:
        """Train on ``data`` (sample, y, x): an array, tensor, DataArray or a file path.

        ``checkpoint``: a file that receives the training state every 500 steps; rerunning the
        same fit with it resumes where it stopped (see :func:`~rgfield.diffusion.train`).
        """
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {NOISES}; got {self.noise!r}")
        if self.skip not in SKIPS:
            raise ValueError(f"skip must be one of {SKIPS}; got {self.skip!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}; got {self.weighting!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}; got {self.lr_schedule!r}")
        check_positive_integer(self.networks, "networks")
        data = io.load(data) if isinstance(data, str | os.PathLike) else data
        fields = io.as_tensor(data, dtype=torch.float32)
        if fields.dim() != 3:
            raise ValueError(
                f"data must be 2D fields (sample, y, x); got shape {tuple(fields.shape)}"
            )
        io.check_finite(fields, "data")
        attrs = dict(getattr(data, "attrs", {}))
        name = getattr(data, "name", None)
        device = torch.device(self.device)
        self.process_ = (
            make_process(self.process) if isinstance(self.process, str) else self.process
        )
        self.seed_ = fresh_seed() if self.seed is None else int(self.seed)
        self.symmetries_ = self.symmetries or symmetries_for(str(attrs.get("generator", "")), name)
        self.whitening_ = fit_whitening(fields, self.noise)
        whitened = self.whitening_.whiten(fields)
        # P_k of the whitened fields (the "spectrum" whitening's amplitude²), where asked for
        power = None
        if self.skip == "wiener" or self.weighting == "spectral":
            power = fit_whitening(whitened, "spectrum").amplitude.square()
        on_device = whitened.to(device)
        trainings = [
            self._train_network(k, on_device, power, checkpoint) for k in range(self.networks)
        ]
        self.denoiser_ = Ensemble([t.ema.module.eval() for t in trainings]).eval()
        self.history_ = _history(trainings)
        self.training_seconds_ = sum(t.seconds for t in trainings)
        self.n_parameters_ = sum(p.numel() for p in self.denoiser_.parameters())
        self.size_ = tuple(fields.shape[-2:])
        self.data_attrs_ = {
            "generator": str(attrs.get("generator", "")),
            "source": str(attrs.get("source", "")),
            "variable": "" if name is None else str(name),
            "samples": len(fields),
        }
        return self

    def _train_network(self, k: int, whitened: torch.Tensor, power, checkpoint) -> Training:
        """Train the k-th network of the ensemble, from seed ``seed_ + k`` (its own checkpoint
        file ``checkpoint.k`` for k > 0)."""
        seed = self.seed_ + k
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = UNet(1, self.width, self.levels, self.bias)
        denoiser = Preconditioned(
            network, sigma_data=1.0, power=power if self.skip == "wiener" else None
        ).to(whitened.device)
        if checkpoint is not None and k > 0:
            checkpoint = f"{os.fspath(checkpoint)}.{k}"
        return train(
            denoiser,
            whitened,
            self.process_,
            steps=self.steps,
            batch=self.batch,
            lr=self.lr,
            lr_schedule=self.lr_schedule,
            ema=self.ema,
            symmetries=self.symmetries_,
            seed=seed,
            checkpoint=checkpoint,
            loss_power=power if self.weighting == "spectral" else None,
            progress=self.progress,
        )

    # -- sampling -----------------------------------------------------------------------------

    def check_fitted(self) -> None:
        """Raise a ValueError unless the model is fitted (or loaded)."""
        if not hasattr(self, "denoiser_"):
            raise ValueError("this DiffusionModel is not fitted; call fit(data) or load a file")

    def denoise(self, x, sigma: float) -> torch.Tensor:
        """D(x, σ) for physical fields x (batch, y, x) with noise of standard deviation σ in
        the whitened variable."""
        self.check_fitted()
        z = self.whitening_.whiten(io.as_tensor(x, dtype=torch.float32))
        with torch.no_grad():
            return self.whitening_.colour(self.denoiser_(z.to(self._device()), sigma).cpu())

    def _device(self) -> torch.device:
        return next(self.denoiser_.parameters()).device

    def sample(
        self,
        n: int,
        *,
        sampler: str = DEFAULT_SAMPLER,
        steps: int = 64,
        churn: float | None = None,
        seed: int | None = None,
        batch: int = 64,
        progress: bool | None = None,
        **options,
    ) -> xr.Dataset:
        """``n`` new fields, drawn by ``sampler`` over ``steps`` noise levels of the model's
        process, ``batch`` at a time; ``options`` go to the sampler (``eta``,
        ``corrector_steps``, ``snr``).

        ``churn`` is EDM's stochastic churn S_churn (``euler``, ``heun``, ``euler_maruyama``):
        each step first raises σ to σ(1 + γ), γ = min(S_churn/N, √2 − 1), with fresh noise. By
        default (:func:`default_churn`) 10 for ``heun`` and ``euler``, 0 for the others. Without it
        the probability-flow ODE carries the denoiser's errors at large σ into the fields'
        largest scales: on φ⁴ at β_c (L = 32) one network gave ⟨|M|⟩ 6.0 standard errors low
        with Heun's ODE at 64 or 128 levels and 1.0 low with S_churn = 10; over four trained
        seeds the churn narrowed z ⟨|M|⟩ from −6.0 … +2.2 to −1.0 … +3.3 (docs/diffusion.md,
        "Physics acceptance"). ``churn=0`` makes ``heun`` deterministic.

        The default 64 levels keep Heun's discretisation error on the spectrum below 1 % without
        churn, 2 % with the default one: on a Gaussian mode of unit variance (the large-σ
        regime every whitened field passes through) Heun's method over the EDM grid returns the
        variance 1.091, 1.026, 1.006 and 1.001 with 18, 32, 64 and 128 levels, and with
        S_churn = 10 1.224 (18), 1.018 (64) and 1.004 (128).

        Returns
        -------
        xarray.Dataset
            Variable ``field`` (sample, y, x); attrs with the sampler, its steps, the seed, the
            ``network_evaluations`` per field (the denoiser's calls times the ensemble's
            networks) and ``seconds_per_sample``.
        """
        self.check_fitted()
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {tuple(SAMPLERS)}; got {sampler!r}")
        check_positive_integer(n, "n")
        churn = default_churn(sampler) if churn is None else churn
        if sampler in CHURN_SAMPLERS:
            if not churn >= 0:
                raise ValueError(f"churn must be non-negative; got {churn!r}")
            options["churn"] = float(churn)
        elif churn:
            raise ValueError(
                f"churn: the {sampler} sampler has no churn (got {churn!r}); use {CHURN_SAMPLERS}"
            )
        seed = fresh_seed() if seed is None else int(seed)
        sigmas = self.process_.sigmas(steps)
        generator = torch.Generator().manual_seed(seed)
        device = self._device()
        denoiser = Counted(self.denoiser_)
        show = self.progress if progress is None else progress
        fields, start = [], time.perf_counter()
        with progress_bar(f"sampling ({sampler})", total=n, enabled=show, unit="field") as on_step:
            for i in range(0, n, batch):
                count = min(batch, n - i)
                z = float(sigmas[0]) * torch.randn((count, *self.size_), generator=generator)
                z = SAMPLERS[sampler](
                    denoiser,
                    z.to(device),
                    sigmas,
                    generator=_device_generator(device, generator),
                    **options,
                )
                fields.append(self.whitening_.colour(z.cpu()))
                on_step(count)
        seconds = time.perf_counter() - start
        attrs = {
            "generator": "rgfield.diffusion.DiffusionModel.sample",
            "sampler": sampler,
            "steps": steps,
            "seed": seed,
            "network_evaluations": denoiser.calls * self.networks // -(-n // batch),
            "seconds_per_sample": seconds / n,
            "process": self.process_.name,
            "noise": self.noise,
            "skip": self.skip,
            "weighting": self.weighting,
            "parameters": self.n_parameters_,
            "networks": self.networks,
            "training_generator": self.data_attrs_["generator"],
            **{f"option_{k}": v for k, v in options.items()},
        }
        return io.to_dataset(torch.cat(fields), "field", attrs)

    # -- persistence --------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the fitted model to netCDF (see :mod:`~rgfield.diffusion.persistence`)."""
        from rgfield.diffusion.persistence import to_dataset

        self.check_fitted()
        return io.save(to_dataset(self), path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> DiffusionModel:
        """A model written by :meth:`save`; a foreign or damaged file gets a ValueError."""
        from rgfield.diffusion.persistence import read

        return read(cls, path, device)


def _device_generator(device: torch.device, generator: torch.Generator) -> torch.Generator:
    """The CPU generator on the CPU; elsewhere a generator on the device seeded from it, so that
    stochastic samplers draw their noise where the fields are."""
    if device.type == "cpu":
        return generator
    seed = int(torch.randint(2**62, (1,), generator=generator))
    return torch.Generator(device).manual_seed(seed)


def _history(trainings: list[Training]) -> xr.Dataset:
    """Loss per step (mean over the networks), and the mean loss of the last half of every
    network's examples per σ bin."""
    losses = np.mean([t.losses for t in trainings], axis=0)
    recent_sigma = np.concatenate([t.sigmas[len(t.sigmas) // 2 :] for t in trainings])
    recent_loss = np.concatenate([t.example_losses[len(t.sigmas) // 2 :] for t in trainings])
    which = np.digitize(recent_sigma, SIGMA_BINS) - 1
    inside = (which >= 0) & (which < len(SIGMA_BINS) - 1)
    totals = np.bincount(which[inside], recent_loss[inside], len(SIGMA_BINS) - 1)
    counts = np.bincount(which[inside], minlength=len(SIGMA_BINS) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        by_sigma = totals / counts
    centres = np.sqrt(SIGMA_BINS[1:] * SIGMA_BINS[:-1])
    return xr.Dataset(
        {
            "loss": ("step", np.asarray(losses, dtype=np.float64)),
            "loss_by_sigma": ("sigma", by_sigma),
            "examples_by_sigma": ("sigma", counts),
        },
        coords={"step": np.arange(1, len(losses) + 1), "sigma": centres},
    )
