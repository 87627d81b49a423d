"""Microcanonical synthesis: it lowers each sample's own loss, terminates within its caps, is
reproducible, moves a Gaussian start towards the target's non-Gaussian statistics, and the CLI
writes a loadable ensemble."""

import numpy as np
import pytest
import torch

from rgfield import io, stats
from rgfield.cli import main
from rgfield.fields.gaussian import gaussian_field
from rgfield.microcanonical import synthesize
from rgfield.scattering import ScatteringCovariance, band_powers, normalized


def _lognormal(size: int = 32, seed: int = 0) -> np.ndarray:
    g = gaussian_field(lambda *k: 1 / (0.2 + sum(kk**2 for kk in k)), (size, size), 1, seed)
    return torch.exp(0.6 * g / g.std())[0].numpy()


def test_synthesis_matches_each_sample_and_moves_towards_the_target_skewness():
    target = _lognormal()
    result = synthesize(
        target, statistics=("scattering",), n=2, J=3, L=4, steps=60, seed=0, progress=False
    )
    assert result.fields.shape == (2, 32, 32) and result.fields.dtype == torch.float32
    assert result.evaluations <= 75 + 25 and result.iterations <= 60
    assert result.final_loss < 0.02 * result.loss[0]
    # each sample on its own is close to the target statistics, not only their average
    op = ScatteringCovariance((32, 32), 3, 4)
    reference = band_powers(op(torch.tensor(target)[None]), op.labels)[0]
    goal = normalized(op(torch.tensor(target)[None]), op.labels, reference)[0]
    start = normalized(op(_start(target)[None]), op.labels, reference)[0]
    for sample in result.fields:
        own = normalized(op(sample[None]), op.labels, reference)[0]
        assert (own - goal).abs().square().mean() < 0.05 * (start - goal).abs().square().mean()
    skewness = stats.moments(result.fields).sel(moment="skewness").values
    target_skewness = stats.moments(target[None]).sel(moment="skewness").values[0]
    gaussian_skewness = stats.moments(_start(target)[None]).sel(moment="skewness").values[0]
    assert (np.abs(skewness - target_skewness) < np.abs(gaussian_skewness - target_skewness)).all()


def _start(target: np.ndarray) -> torch.Tensor:
    """The synthesis' own Gaussian starting field for seed 0, n = 1."""
    from rgfield.microcanonical import _initial_fields

    generator = torch.Generator().manual_seed(0)
    return _initial_fields(torch.tensor(target[None]), 1, "gaussian", generator)[0]


def test_gaussian_start_has_the_target_spectrum_and_mean():
    from rgfield.microcanonical import _initial_fields

    target = torch.tensor(_lognormal(seed=3))[None]
    start = _initial_fields(target, 1, "gaussian", torch.Generator().manual_seed(2))
    # random phases, same moduli: identical periodogram and mean
    torch.testing.assert_close(
        torch.fft.fft2(start - start.mean()).abs(), torch.fft.fft2(target - target.mean()).abs()
    )
    assert float(start.mean()) == pytest.approx(float(target.mean()), abs=1e-5)


def test_spectrum_and_moments_families_are_matched():
    # with all three families (the default) the synthesis reproduces the target's shell power
    # spectrum and pixel moments closely; the scattering family alone does not pin them
    target = _lognormal(seed=2)
    result = synthesize(target, n=1, J=3, L=4, steps=80, seed=0, progress=False)
    assert result.settings["statistics"] == "scattering,spectrum,moments"
    ratio = stats.power_spectrum(result.fields).values[0] / stats.power_spectrum(target).values[0]
    assert np.abs(ratio - 1).max() < 0.02
    ours = stats.moments(result.fields).values[0]
    theirs = stats.moments(target).values[0]
    np.testing.assert_allclose(ours, theirs, rtol=0.02)


def test_synthesis_is_reproducible_and_stops_at_its_caps():
    target = _lognormal(seed=1)
    a = synthesize(target, n=1, J=2, L=2, steps=5, seed=3, progress=False)
    b = synthesize(target, n=1, J=2, L=2, steps=5, seed=3, progress=False)
    torch.testing.assert_close(a.fields, b.fields)
    # caps: 5 iterations, 6 evaluations — checked between iterations, so the last line search
    # (at most 25 evaluations) may finish first
    assert a.iterations <= 5 and a.evaluations <= 6 + 25 and not a.converged
    ds = a.to_dataset()
    assert ds.field.shape == (1, 32, 32) and ds.attrs["steps"] == 5 and ds.attrs["seed"] == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n"),
        ({"steps": 0}, "steps"),
        ({"init": "uniform"}, "init"),
        ({"tolerance": -1.0}, "tolerance"),
        ({"statistics": ("scattering", "histogram")}, "statistics"),
        ({"statistics": ()}, "statistics"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthesize(_lognormal(), progress=False, **kwargs)
    with pytest.raises(ValueError, match="target"):
        synthesize(np.zeros(16), progress=False)


def test_cli_synthesize_writes_samples_with_their_settings(tmp_path, capsys):
    data = tmp_path / "target.nc"
    io.save(io.to_dataset(np.stack([_lognormal(seed=s) for s in range(2)]), "field"), data)
    out = tmp_path / "synth.nc"
    args = ["synthesize", "--data", str(data), "--n", "2", "--J", "2", "--L", "2"]
    args += ["--steps", "5", "--seed", "1", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    da = io.load(out)
    assert da.sizes == {"sample": 2, "y": 32, "x": 32} and da.attrs["J"] == 2
    assert "L-BFGS" in capsys.readouterr().out
    assert main(args) == 1  # refuses to overwrite
