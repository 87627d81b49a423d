"""Score diffusion: denoising diffusion models of physical fields, trained on the same ensembles
as the RG models, so that the two pathways are compared on equal data.

Layers, each usable alone (docs/diffusion.md):

* :mod:`~rgfield.diffusion.processes`: noise processes (variance exploding with the EDM grid,
  variance preserving with linear and cosine schedules), all in the unscaled variable
  x̂ = x + σ n;
* :mod:`~rgfield.diffusion.whitening`: white or spectrum-coloured noise, as a linear map of the
  fields;
* :mod:`~rgfield.diffusion.denoisers`: a circular-padded UNet (and its bias-free variant) with
  EDM preconditioning, and the mean of several denoisers;
* :mod:`~rgfield.diffusion.training`: denoising score matching with EMA and exact checkpoints;
* :mod:`~rgfield.diffusion.samplers`: Euler, Heun, DDIM, Euler–Maruyama, predictor–corrector,
  ``sample_x(denoiser, x, sigmas, ...)``;
* :mod:`~rgfield.diffusion.oracles`: exact denoisers (Wiener filter, empirical softmax);
* :class:`~rgfield.diffusion.DiffusionModel`: the estimator (``fit``, ``sample``, ``save``,
  ``load``) that ties them together.
"""

from rgfield.diffusion.augmentation import Symmetries, symmetries_for
from rgfield.diffusion.denoisers import SKIPS, Ensemble, Preconditioned, UNet
from rgfield.diffusion.model import DEFAULT_CHURN, Counted, DiffusionModel, default_churn
from rgfield.diffusion.oracles import EmpiricalDenoiser, WienerDenoiser
from rgfield.diffusion.processes import (
    PROCESSES,
    VarianceExploding,
    VariancePreserving,
    make_process,
)
from rgfield.diffusion.samplers import (
    SAMPLERS,
    sample_ddim,
    sample_euler,
    sample_euler_maruyama,
    sample_heun,
    sample_pc,
)
from rgfield.diffusion.training import (
    LR_SCHEDULES,
    WEIGHTINGS,
    Training,
    learning_rate,
    mse_by_sigma,
    train,
    weighted_loss,
)
from rgfield.diffusion.whitening import Whitening, fit_whitening

__all__ = [
    "DEFAULT_CHURN",
    "LR_SCHEDULES",
    "PROCESSES",
    "SAMPLERS",
    "SKIPS",
    "WEIGHTINGS",
    "Counted",
    "DiffusionModel",
    "Ensemble",
    "EmpiricalDenoiser",
    "Preconditioned",
    "Symmetries",
    "default_churn",
    "Training",
    "UNet",
    "VarianceExploding",
    "VariancePreserving",
    "WienerDenoiser",
    "Whitening",
    "fit_whitening",
    "learning_rate",
    "make_process",
    "mse_by_sigma",
    "sample_ddim",
    "sample_euler",
    "sample_euler_maruyama",
    "sample_heun",
    "sample_pc",
    "symmetries_for",
    "train",
    "weighted_loss",
]
