"""MALA with one Metropolis test per block of a coloured tiling (Metropolis-within-Gibbs)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import ClassVar

import numpy as np
import torch

from rgfield.mcmc.base import (
    Info,
    LogDensityFn,
    State,
    StepSize,
    acceptance_rate,
    axpy,
    check_step_size,
    step_sizes,
)

__all__ = ["BlockMALA"]

_COLOURS = ((0, 0), (0, 1), (1, 0), (1, 1))


@dataclass(frozen=True)
class BlockMALA:
    """MALA with one Metropolis test per block: Metropolis-within-Gibbs over a coloured tiling.

    For log p(y) = Σ_p ℓ(p), a sum of per-cell log-densities over the cells p of an n × n grid
    (the last two dimensions of a position (chains, C, n, n)). The grid is tiled by b × b
    blocks in four colours (the parities of the block row and column). A step sweeps the
    colours; for one colour every block B proposes at once

        y'_B = y_B + h ∇_B log p(y) + √(2h) ξ_B,   ξ ~ N(0, 1),

    and each block is accepted on its own with probability min(1, α_B),

        log α_B = Δℓ_B − [‖y_B − y'_B − h ∇_B log p(y')‖² − ‖√(2h) ξ_B‖²] / 4h,

    Δℓ_B = Σ_{p ∈ R_B} [ℓ(y')(p) − ℓ(y)(p)] over the 2b × 2b cells R_B centred on B. When
    the density and gradient at a cell depend on y only within ``reach`` ≤ b/2 cells, blocks
    of one colour (b cells apart) do not interact: Δℓ_B and ∇ log p(y') on R_B are those of
    moving B alone, and each block update is an exact MALA step for p(y_B | rest), so every
    sweep leaves p invariant. The blocks have a fixed size, so the step h for a target
    acceptance and the mixing per sweep do not depend on n, whereas one test per chain
    (:class:`~rgfield.mcmc.MALA`) needs h ∝ n^(−2/3) (Roberts & Rosenthal, JRSS B 60, 255
    (1998)).

    A sweep costs four evaluations of ``logdensity_and_grad`` (one per colour): after each
    colour the state is assembled region by region from the proposal's and the current values.
    ``Info.accepted`` and ``Info.acceptance_rate`` are averages over a chain's block tests.

    Parameters
    ----------
    logdensity_and_grad : :data:`~rgfield.mcmc.LogDensityFn`
        Returning per-cell log-densities (chains, n, n) and ∇ log p (chains, C, n, n).
    step_size : float or array_like (chains,)
        h, for every chain or one per chain.
    block : int
        Block side b, even, at least twice the log-density's reach; n must be a multiple of 2b.
    """

    logdensity_and_grad: LogDensityFn
    step_size: StepSize
    block: int
    target_acceptance: ClassVar[float] = 0.574

    def __post_init__(self) -> None:
        check_step_size(self.step_size)
        block = self.block
        if not (isinstance(block, int | np.integer) and block >= 2 and block % 2 == 0):
            raise ValueError(f"block must be an even integer >= 2; got {self.block!r}")

    def init(self, position: torch.Tensor) -> State:
        if position.dim() != 4 or any(n % (2 * self.block) for n in position.shape[-2:]):
            raise ValueError(
                f"position: expected shape (chains, C, n, n) with n a multiple of 2 × block ="
                f" {2 * self.block}; got {tuple(position.shape)}"
            )
        density, grad = self.logdensity_and_grad(position)
        if density.shape != (position.shape[0], *position.shape[-2:]):
            raise ValueError(
                "logdensity_and_grad: BlockMALA needs per-cell log-densities of shape"
                f" (chains, n, n); got {tuple(density.shape)}"
            )
        return State(position, density.sum((-2, -1)), grad, density)

    def step(self, state: State, generator: torch.Generator) -> tuple[State, Info]:
        """One sweep over the four colours."""
        log_alphas, accepts = [], []
        for colour in _COLOURS:
            state, log_alpha, accept = self._colour_step(state, colour, generator)
            log_alphas.append(log_alpha.flatten(1))
            accepts.append(accept.flatten(1))
        log_alpha, accept = torch.cat(log_alphas, 1), torch.cat(accepts, 1)  # (chains, tests)
        info = Info(
            acceptance_rate(log_alpha).mean(1),
            accept.to(log_alpha.dtype).mean(1),
            (~torch.isfinite(log_alpha)).any(1),
        )
        return state, info

    def _colour_step(
        self, state: State, colour: tuple[int, int], generator: torch.Generator
    ) -> tuple[State, torch.Tensor, torch.Tensor]:
        """The blocks of one colour: the new state, and log α and the decision of each block."""
        x, g, ell, b = state.position, state.grad, state.density, self.block
        h, root, _ = step_sizes(self.step_size, x)
        shift = (b // 2 - colour[0] * b, b // 2 - colour[1] * b)  # puts R_B on a 2b × 2b tile
        ny, nx = x.shape[-2:]
        mask = _colour_mask(ny, nx, b, colour, x.device)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        proposal = torch.where(mask, axpy(axpy(x, h, g), root, noise), x)
        ell_new, g_new = self.logdensity_and_grad(proposal)
        # ‖x − x' − h∇'‖²/4h − ‖ξ‖²/2 per cell, in fused passes over fresh temporaries
        proposal_terms = axpy(x - proposal, -h, g_new).square_().div_(4 * h)
        proposal_terms = torch.addcmul(proposal_terms, noise, noise, value=-0.5)
        cost = (ell - ell_new) + torch.where(mask, proposal_terms, 0.0).sum(1)  # −log α per cell
        rolled = torch.roll(cost, shift, (-2, -1))
        log_alpha = -rolled.reshape(-1, ny // (2 * b), 2 * b, nx // (2 * b), 2 * b).sum((2, 4))
        uniform = torch.rand(log_alpha.shape, generator=generator, dtype=x.dtype, device=x.device)
        accept = torch.log(uniform) < log_alpha  # NaN (∞ − ∞) and −∞ log-densities: rejected
        region = accept.repeat_interleave(2 * b, -2).repeat_interleave(2 * b, -1)
        region = torch.roll(region, (-shift[0], -shift[1]), (-2, -1))
        density = torch.where(region, ell_new, ell)
        new = State(
            torch.where(region[:, None], proposal, x),
            density.sum((-2, -1)),
            torch.where(region[:, None], g_new, g),
            density,
        )
        return new, log_alpha, accept


@cache
def _colour_mask(
    ny: int, nx: int, block: int, colour: tuple[int, int], device: torch.device
) -> torch.Tensor:
    """True on the blocks of one colour of the ny × nx grid (see :class:`BlockMALA`)."""
    b = block
    tile = torch.zeros(2 * b, 2 * b, dtype=torch.bool, device=device)
    tile[colour[0] * b : colour[0] * b + b, colour[1] * b : colour[1] * b + b] = True
    return tile.repeat(ny // (2 * b), nx // (2 * b))
