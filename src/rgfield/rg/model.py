"""The hierarchical wavelet RG model as an estimator: fit, sample, energy, score, save, load."""

from __future__ import annotations

import inspect
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from rgfield._progress import progress
from rgfield._validate import fresh_seed, is_integer
from rgfield.energies import ExponentialModel
from rgfield.fields import resolve_device
from rgfield.io import as_tensor
from rgfield.rg import persistence
from rgfield.rg.calibration import calibrate
from rgfield.rg.coordinates import Coordinates, chain_coordinates
from rgfield.rg.fitting import Fitted, fit_hierarchy
from rgfield.rg.parameters import check_parameters, feature_spec
from rgfield.rg.sampling import (
    SAMPLER_DEFAULTS,
    STARTS,
    SampleResult,
    check_sampler,
    generate,
)
from rgfield.rg.scales import Scale, coarse_to_fine, per_scale
from rgfield.rg.subspace import DetailSubspace
from rgfield.wavelets import decompose

__all__ = ["HierarchicalModel"]


class HierarchicalModel:
    """Wavelet conditional RG model p(x_0) = p_J(x_J) Π_j p̄_j(x̄_j | x_j) of 2D periodic fields.

    The orthonormal wavelet pyramid x_0 ↔ (x_J, x̄_J, ..., x̄_1) has unit Jacobian, so the
    density factorises exactly; each factor is an exponential model
    p̄_j ∝ exp(−θ_jᵀ Φ_j(x̄_j, x_j)) of the renormalised variables (:mod:`rgfield.rg.scales`),
    fitted by score matching and sampled coarse to fine by MCMC (Marchand, Ozawa, Biroli &
    Mallat, "Multiscale data-driven energy estimation and generation", PRX 13, 041038 (2023)).

    It follows scikit-learn's estimator rules: the constructor stores its parameters and
    nothing else (they are checked when :meth:`fit` starts); what a fit learns ends in ``_``.

    Parameters
    ----------
    levels : int, optional
        Number of RG steps J; default log2 of the smallest field size that 2**J divides
        (down to a 1×1 coarsest field for L = 2^k).
    wavelet : str
        Orthogonal wavelet of the pyramid (``"db4"`` by default).
    features : sequence of names or mapping name → options
        Feature families of every conditional and of the coarsest model, by registered name
        (:func:`rgfield.energies.register_feature`): by default the scalar potential and the
        quadratic couplings. The coarsest model always has the scalar potential too (it
        carries the fields' mean; :func:`~rgfield.rg.parameters.factor_features`). An
        option ``"min_level": j`` in a family's entry keeps it out of the conditionals finer
        than j (``{"potential": {"min_level": 2}, "quadratic": {}}``: no potential at j = 1).
    ridge : float or sequence of floats
        Ridge added to the preconditioned score-matching matrix (unit diagonal). With several
        values, each scale takes the one with the lowest held-out score-matching loss. On the
        φ⁴ reference ensemble (L = 32, 500 samples) that choice picked ridges up to 0.1 on the
        coarse, data-poor scales and raised χ of the samples by about 2σ, so the default is a
        small fixed ridge.
    heldout : float
        Fraction of the samples (the last ones) held out to report the score-matching loss.
    refine : int, sequence of int or "auto"
        Iterations of conditional maximum likelihood (moment matching with MALA chains, see
        :func:`~rgfield.rg.match_moments`) that follow score matching for every model sampled
        by MALA; 0 keeps the score-matching fit. One value for every model, or J + 1 values
        (finest conditional first, the coarsest field last): the coarse models cost seconds
        per iteration and their moments rest on a few sites per field, so they gain from more
        (see docs/rg.md on φ⁴ at β = 1.0). ``"auto"``: 10 for the models whose variables lie
        on more than 4 × 4 sites, 30 for the others (:func:`~rgfield.rg.parameters.auto_refine`).
        Score matching weighs every configuration by the squared score, and on φ⁴ it leaves
        the detail variance of data-poor coarse scales up to 10 % too high near domain walls;
        the refinement removes that bias.
    refine_steps : int
        MALA steps per refinement iteration (the features are averaged over 10 states of the
        last half).
    refine_coarse : {"data", "generated"}
        Coarse fields the refinement chains are conditioned on. ``"data"``: the training
        fields' own (conditional maximum likelihood, scale by scale). ``"generated"``: coarse
        fields drawn from the already fitted coarser models, finest last, so each conditional
        is refined until the fields the whole hierarchy generates have the data's moments of
        its features; this also corrects the finer conditionals' response to what the
        coarser models get wrong (on φ⁴ at L = 64 it removed the 2–3 % excess variance of
        generated fields: see docs/rg.md).
    min_curvature : float or None
        A floor δ on the smallest eigenvalue of every conditional's Hessian ∇²_y U at the
        training samples and at them with their coarse fields' contrast amplified 1.5×,
        found by Lanczos steps (score matching under linear cuts,
        :mod:`rgfield.rg.convexity`).
        Score matching alone can leave the energy non-convex at the data, and chains then run
        away from it (docs/rg_fields.md: 0.1 brings the cosmic web's finest conditional from
        −0.20 to +0.18 at a score-matching loss 0.5 % higher). ``None``: no floor (φ⁴'s
        double well is not convex).
    progress : bool
        Show progress bars.

    Attributes
    ----------
    levels_ : int
        Number of RG steps J of the fitted model.
    size_ : tuple of int
        Field size (L, L) of the training data.
    scales_ : rgfield.wavelets.PyramidScales
        γ of every factor: ``scales_.details[j - 1]`` = rms of x̄_j in the data (it divides
        both x̄_j and x_j in conditional j), ``scales_.low`` = rms of x_J.
    conditionals_ : list of ExponentialModel
        ``conditionals_[j - 1]`` models x̄_j / γ_j given x_j / γ_j.
    low_ : ExponentialModel
        Model of x_J / γ_low (one channel).
    free_energies_ : list of ExponentialModel
        ``free_energies_[j - 1]`` is F_j(x_j / γ_j) = log Z_j, the normaliser of conditional j,
        over the feature families on the coarse field alone (used by :meth:`energy`).
    fit_report_ : xarray.Dataset
        Per factor: method, number of features, κ(H) before and after preconditioning,
        training and held-out score-matching loss per variable, moment gaps, fit time.
    free_energy_report_ : xarray.Dataset
        Per conditional: features, κ(H), and the fraction of the target gradient left
        unexplained by F_j on training and held-out samples.
    starts_ : dict of str to GaussianStart
        By factor name (``"low"``, ``"j=1"``, ...; none for a one-variable factor): the
        stationary Gaussian fitted to the training details that the chains of :meth:`sample`
        start from (:mod:`rgfield.energies.stationary`).
    band_ : rgfield.rg.band.Band or None
        For band-limited training fields (a dealiased simulation), the Fourier modes without
        power. The finest conditional is fitted and sampled on the affine subspace of details
        such fields allow (:meth:`subspace`), and :meth:`sample` projects its fields onto the
        live modes. None for full-band fields and for fits from chunks
        (:func:`rgfield.ensembles.fit`).
    calibration_ : dict of str to Calibration
        By factor name: the step and τ_int of the sampler measured by :meth:`calibrate`
        (empty after :meth:`fit`), which ``sample(steps="auto")`` uses instead of a pilot.
    """

    def __init__(
        self,
        levels: int | None = None,
        wavelet: str = "db4",
        features: Sequence[str] | Mapping[str, Mapping] = ("potential", "quadratic"),
        ridge: float | Sequence[float] = 1e-6,
        heldout: float = 0.1,
        refine: int | Sequence[int] | str = 0,
        refine_steps: int = 100,
        refine_coarse: str = "data",
        min_curvature: float | None = None,
        progress: bool = True,
    ) -> None:
        self.levels = levels
        self.wavelet = wavelet
        self.features = features
        self.ridge = ridge
        self.heldout = heldout
        self.refine = refine
        self.refine_steps = refine_steps
        self.refine_coarse = refine_coarse
        self.min_curvature = min_curvature
        self.progress = progress

    # -- parameters (scikit-learn's get_params / set_params) --------------------------------

    def get_params(self) -> dict:
        """The constructor parameters by name."""
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self"}

    def set_params(self, **params) -> HierarchicalModel:
        """Set constructor parameters (checked at the next :meth:`fit`); returns ``self``."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"{name}: not a parameter of HierarchicalModel ({list(valid)})")
            setattr(self, name, value)
        return self

    def feature_spec(self) -> dict[str, dict]:
        """``features`` as a mapping family name → options."""
        return {name: dict(options) for name, options in feature_spec(self.features).items()}

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, data, seed: int = 0) -> HierarchicalModel:
        """Fit every conditional and the coarsest model by closed-form score matching.

        With ``refine`` iterations each model sampled by MALA is then refined towards its
        conditional maximum likelihood (:func:`~rgfield.rg.match_moments`); a one-variable
        coarsest model is fitted by exact maximum likelihood.

        Parameters
        ----------
        data : array_like, shape (samples, L, L)
            Independent fields (numpy, torch or xarray), periodic, each size divisible by
            2**levels.
        seed : int
            Seed of the refinement's MALA chains (unused without refinement).

        Returns
        -------
        self
        """
        x = _fields(data, "data")
        if x.shape[0] < 2:
            raise ValueError(f"data: at least 2 samples are needed; got {x.shape[0]}")
        if not is_integer(seed):
            raise ValueError(f"seed must be an integer; got {seed!r}")
        settings = check_parameters(self.get_params(), x.shape[-2:])
        _refuse_discrete(x)
        generator = torch.Generator().manual_seed(int(seed))
        fitted = fit_hierarchy(x, settings, generator, self.progress)
        return self.learn(fitted, x.shape[-2:])

    def learn(self, fitted: Fitted, size: Sequence[int]) -> HierarchicalModel:
        """Take the learned attributes of ``fitted`` for fields of ``size``; returns ``self``
        (the last step of :meth:`fit` and of :func:`rgfield.ensembles.fit`)."""
        self.levels_, self.size_ = len(fitted.conditionals), tuple(int(n) for n in size)
        self.scales_ = fitted.scales
        self.low_, self.conditionals_ = fitted.low, fitted.conditionals
        self.free_energies_ = fitted.free_energies
        self.fit_report_, self.free_energy_report_ = fitted.fit_report, fitted.free_energy_report
        self.starts_ = fitted.starts
        self.band_ = fitted.band
        self.calibration_ = {}
        return self

    def calibrate(
        self, data, seed: int = 0, sampler: str = "hmc", device: str | torch.device = "cpu"
    ) -> HierarchicalModel:
        """Tune the sampler's step and measure its τ_int at every scale, once, on data.

        The pilot that ``sample(steps="auto")`` otherwise runs in every draw (32 chains: a
        warm-up, then 50 τ_int) runs here once, on more chains
        (:data:`~rgfield.rg.calibration.CALIBRATION_CHAINS`, a more precise τ_int) started
        at the details of the first fields of ``data`` given their coarse fields (an
        equilibrium start where the model fits), and the same chains, restarted from the
        Gaussian start, measure its burn-in; draws with ``sampler`` then run every chain the
        burn-in of their batch (:mod:`rgfield.rg.burnin`) from its Gaussian start at the stored
        step (:mod:`rgfield.rg.calibration`).
        ``rgfield fit`` calibrates its model on the training fields; a later :meth:`fit`
        clears it.

        Parameters
        ----------
        data : array_like (samples, L, L)
            Fields of the model's size and law: the training fields, or held-out ones.
        seed : int
            Seed of the chains.
        sampler : {"hmc", "mala", "block"}
            The kernel of the draws to calibrate for (``sample``'s default, ``"hmc"``).
        device : str or torch.device
            Where the chains run.

        Returns
        -------
        self, with :attr:`calibration_` (a scale whose pilot did not measure τ_int is left
        out; its draws measure it themselves).
        """
        self.check_fitted()
        if not is_integer(seed):
            raise ValueError(f"seed must be an integer; got {seed!r}")
        device = resolve_device(device)
        x = self.check_fields(data, "data").to(device)
        if len(x) < 2:
            raise ValueError(f"data: at least 2 fields are needed to calibrate; got {len(x)}")
        generator = torch.Generator(device).manual_seed(int(seed))
        with progress("calibrate", enabled=self.progress, unit="step") as on_step:
            self.calibration_ = calibrate(self, x, generator, sampler, on_step=on_step)
        return self

    def check_fitted(self) -> None:
        """Raise a ValueError unless the model has been fitted or loaded."""
        if not hasattr(self, "conditionals_"):
            raise ValueError("the model is not fitted: call fit(data) or HierarchicalModel.load")

    def check_fields(self, x, name: str = "x") -> torch.Tensor:
        """Fields of the fitted size as float64 (B, L, L), finite; else a ValueError."""
        x = _fields(x, name)
        if tuple(x.shape[-2:]) != self.size_:
            raise ValueError(f"{name}: fields must be {self.size_}; got {tuple(x.shape[-2:])}")
        return x

    @property
    def low_shape(self) -> tuple[int, int]:
        """Shape of the coarsest field x_J."""
        self.check_fitted()
        return self.size_[0] >> self.levels_, self.size_[1] >> self.levels_

    def factor(self, scale: Scale) -> ExponentialModel:
        """The fitted model of one factor of :func:`~rgfield.rg.scales.coarse_to_fine`."""
        return self.conditionals_[scale.level - 1] if scale.conditional else self.low_

    def subspace(self, scale: Scale) -> DetailSubspace | None:
        """The affine subspace the details of ``scale`` lie on: for band-limited training
        fields (:attr:`band_`) and the finest conditional, where a dealiased simulation's
        empty modes are (:mod:`rgfield.rg.subspace`); None otherwise."""
        self.check_fitted()
        if self.band_ is None or not scale.finest:
            return None
        return DetailSubspace.of(self.band_, self.wavelet)

    def coordinates(self, scale: Scale) -> Coordinates | None:
        """The coordinates the chains of ``scale`` move in (:mod:`rgfield.rg.coordinates`)."""
        return chain_coordinates(self.factor(scale), self.subspace(scale))

    # -- energy and likelihood ----------------------------------------------------------------

    def energy(self, x) -> torch.Tensor:
        """The model's energy E(x) = −log p(x) + const of fields ``x`` (shape (B, L, L)).

        Each conditional is normalised by its free energy F_j = log Z_j (fitted by regression
        on gradients, :attr:`free_energies_`), so the factorisation p = p_J Π_j p̄_j gives

            E(x_0) = U_J(x_J/γ_low) + Σ_j [Ū_j(x̄_j/γ_j | x_j/γ_j) + F_j(x_j/γ_j)],

        the microscopic energy of the fields in their own units (the normalisations and the
        orthonormal transform only shift the constant). Differentiable in ``x`` (torch
        autograd); +∞ outside the support of a scalar potential.
        """
        self.check_fitted()
        x = self.check_fields(x)
        pyramid = decompose(x, self.levels_, self.wavelet)
        total = 0.0
        for scale in coarse_to_fine(self.scales_):
            y, c = scale.variables(pyramid)
            total = total + self.factor(scale).energy(y, c)
            if scale.conditional:
                total = total + self.free_energies_[scale.level - 1].energy(c.unsqueeze(1))
        return total

    def energy_and_grad(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`energy` and its gradient ∇_x E (by autograd), shapes (B,) and (B, L, L).

        Where the energy is +∞ (a field outside a potential's support) the gradient is NaN.
        """
        self.check_fitted()
        x = self.check_fields(x).detach().requires_grad_()
        energy = self.energy(x)
        (grad,) = torch.autograd.grad(energy.sum(), x)
        grad[~torch.isfinite(energy)] = float("nan")
        return energy.detach(), grad

    def score_samples(self, x) -> torch.Tensor:
        """Log-likelihood of each field, log p(x) = −E(x), up to one model-wide constant.

        The free energies are fitted through their gradients, so the constant is unknown:
        differences between fields (and :meth:`score` of two ensembles) are meaningful, the
        absolute value is not (scikit-learn's ``score_samples``).
        """
        return -self.energy(x).detach()

    def score(self, x) -> float:
        """Mean of :meth:`score_samples` over the fields (up to the same constant)."""
        return float(self.score_samples(x).mean())

    # -- sampling -----------------------------------------------------------------------------

    def sample(
        self,
        n: int,
        seed: int | None = None,
        steps: int | Sequence[int] | str = "auto",
        warmup: int | Sequence[int] | None = None,
        step_size: float | None = None,
        adjusted: bool = True,
        sampler: str = "hmc",
        device: str | torch.device = "cpu",
        start: str = "gaussian",
    ) -> SampleResult:
        """Draw ``n`` fields coarse to fine: x_J, then x̄_j | x_j for j = J, ..., 1.

        Each factor is sampled with ``n`` chains in one batch, started from a draw of the
        stationary Gaussian fitted to the training details (``starts_``): ``warmup`` steps
        tune the step size to the kernel's target acceptance (then it is frozen), ``steps``
        more produce the sample. With ``steps="auto"``, where the model was calibrated for
        ``sampler`` (:meth:`calibrate`), every chain runs the measured burn-in of a batch of
        ``n`` from its start at the calibrated step (no warm-up); else a pilot of 32 chains
        warms up and runs 50 τ_int (the larger of the energy's and the summed details'), and
        every chain runs 10 τ_int at its tuned step
        (:func:`~rgfield.rg.sampling.draw_with_pilot`). The calibration is used
        for Gaussian starts with ``adjusted=True``; ``warmup`` and ``step_size`` then do not
        apply (they tune a pilot). A one-variable coarsest model is drawn exactly.

        Parameters
        ----------
        n : int
            Number of fields.
        seed : int, optional
            Seed of the torch generator; the same seed gives the same fields on the same device.
            Without one a fresh seed is drawn from the OS and recorded in the result's attrs.
        steps, warmup : int or sequence of J + 1 ints
            MCMC steps per factor, one count for all or one per conditional (finest first) and
            last the coarsest field; ``steps="auto"`` (the default) sets each factor's from
            the τ_int its chains show. ``warmup`` defaults to 50 HMC trajectories or 200
            MALA steps.
        step_size : float, optional
            Initial step h before the warm-up (default 0.2 for HMC, 0.05 for MALA).
        adjusted : bool
            False: unadjusted Langevin (``sampler="mala"`` only; no Metropolis test, biased
            by O(h)).
        sampler : {"hmc", "mala", "block"}
            ``"hmc"`` (the default since 2026-12-06): :class:`~rgfield.mcmc.HMC`, a step is a
            trajectory of duration :data:`~rgfield.rg.sampling.HMC_LENGTH` (jittered),
            ⌈length / h⌉ gradient evaluations; ``steps`` and ``warmup`` count trajectories.
            At L = 128 (φ⁴) its τ_int is 1–2 trajectories at every scale, and a field costs
            5.7× less than with MALA (docs/rg.md, "Sampling").
            ``"mala"``: :class:`~rgfield.mcmc.MALA`, one Metropolis test per field.
            ``"block"``: :class:`~rgfield.mcmc.BlockMALA` (one test per block, a step is a
            sweep of four colours) on the scales whose grid admits blocks of twice the energy's
            reach (n ≥ 16 with the default 9×9 stencil), MALA on the smaller ones and, with a
            warning naming the scale, where the energy is not local (the gaussian and scatcov
            families) or the chains move in other coordinates than the details
            (:meth:`coordinates`): the mixing per step of a scale no longer grows with L, at
            four gradient evaluations per step.
        device : str or torch.device
            Where the chains run (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``): θ, the
            generator and every step stay there; the fields are returned on it.
        start : {"gaussian", "zero"}
            Where the chains start: ``"gaussian"``, a draw of :attr:`starts_` given the coarse
            field (every mode at its stationary amplitude, so little burn-in; zero details
            for a model file written before starts were stored), or ``"zero"``, zero details.

        Returns
        -------
        SampleResult
            The fields, projected onto the live Fourier modes for a model of band-limited
            fields (:attr:`band_`). Its attrs hold the cost: ``seconds_per_field`` (wall
            time of the draw over ``n``) and ``gradients_per_field`` (energy-gradient
            evaluations of one field's chains, warm-ups included, summed over scales), and
            ``empty_modes``, the number of Fourier modes projected out (0 for full-band data).
        """
        self.check_fitted()
        if not is_integer(n) or n < 1:
            raise ValueError(f"n must be a positive integer; got {n!r}")
        if seed is not None and not is_integer(seed):
            raise ValueError(f"seed must be an integer or None; got {seed!r}")
        if steps == "auto":
            steps = ["auto"] * (self.levels_ + 1)
        else:
            steps = per_scale(steps, self.levels_, "steps")
        check_sampler(sampler, adjusted)
        defaults = SAMPLER_DEFAULTS[sampler]
        warmup = per_scale(defaults["warmup"] if warmup is None else warmup, self.levels_, "warmup")
        step_size = defaults["step_size"] if step_size is None else step_size
        if start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}; got {start!r}")
        if start == "gaussian" and not self.starts_:
            warnings.warn(
                "this model (from a file written before rgfield stored chain starts) has no"
                " Gaussian starts; its chains start from zero details, with a longer burn-in."
                " Fit it again to get them",
                stacklevel=2,
            )
        device = resolve_device(device)
        seed = fresh_seed() if seed is None else int(seed)
        generator = torch.Generator(device).manual_seed(seed)
        total = None if "auto" in steps else sum(warmup) + sum(steps)
        began = time.perf_counter()
        with progress("sample", total, enabled=self.progress, unit="step") as on_step:
            fields, diagnostics = generate(
                self,
                int(n),
                generator,
                steps,
                warmup,
                step_size,
                adjusted,
                sampler,
                self.starts_ if start == "gaussian" else {},
                on_step,
                self.calibration_,
            )
        if self.band_ is not None:
            fields = self.band_.project(fields)
        seconds = time.perf_counter() - began
        attrs = {
            "generator": "rgfield.rg.HierarchicalModel.sample",
            "seed": seed,
            "levels": self.levels_,
            "wavelet": self.wavelet,
            "adjusted": int(adjusted),
            "sampler": sampler,
            "start": "gaussian" if start == "gaussian" and self.starts_ else "zero",
            "device": str(device),
            "seconds_per_field": seconds / n,
            "gradients_per_field": round(float(np.nansum(diagnostics.gradients.values))),
            "empty_modes": 0 if self.band_ is None else int(self.band_.empty.sum()),
        }
        return SampleResult(fields, diagnostics, attrs)

    # -- files --------------------------------------------------------------------------------

    def to_dataset(self) -> xr.Dataset:
        """The fitted model as a Dataset: learned arrays as variables, the spec in attrs."""
        self.check_fitted()
        return persistence.to_dataset(self)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the fitted model to netCDF (atomically; never overwrites unless asked)."""
        self.check_fitted()
        return persistence.save_model(self, path, overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, progress: bool = True) -> HierarchicalModel:
        """Read a model written by :meth:`save`; it samples exactly as the saved model did."""
        return persistence.load(cls, path, progress)


def _refuse_discrete(x: torch.Tensor) -> None:
    """A ValueError for integer-valued data: a density on continuous fields has no meaning
    for them (score matching returns an unbounded fit and the sampler collapses). Constant
    data are left to the scale estimate, which says they have no fluctuations."""
    if torch.equal(x, x.round()) and (values := torch.unique(x)).numel() > 1:
        shown = ", ".join(f"{v:g}" for v in values[:8].tolist())
        raise ValueError(
            f"data: every value is an integer ({values.numel()} distinct: {shown}"
            f"{', …' if values.numel() > 8 else ''}); rgfield models continuous fields."
            " Dequantise first, e.g. x + numpy.random.default_rng(0).uniform(-0.5, 0.5, x.shape)"
            " (or log(1 + x) + noise for counts)"
        )


def _fields(data, name: str) -> torch.Tensor:
    """Fields as float64 (B, L, L), finite; else a ValueError naming ``name``."""
    x = as_tensor(data, dtype=torch.float64)
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape (samples, L, L); got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return x
