"""The two-model generalisation study: its pairing of models and noise, and its crossover."""

import numpy as np
import pytest
import torch
import xarray as xr

from rgfield import io
from rgfield.cli import main
from rgfield.diffusion.memorisation import crossover, generalisation

TINY = dict(width=4, levels=2, steps=3, batch=4)


def test_two_models_of_identical_training_sets_draw_identical_fields():
    """Same seed, same data in both sets, same initial noise: the two models are one model,
    so their samples agree exactly; the held-out yardstick is computed on the other fields."""
    generator = torch.Generator().manual_seed(0)
    unique = torch.randn(2, 8, 8, generator=generator)
    held = torch.randn(4, 8, 8, generator=generator)
    data = torch.cat([unique, unique, held])  # set A = fields 0-1, set B = fields 2-3
    result = generalisation(
        data, [1, 2], samples=3, heldout=4, sampler_steps=4, model_options=TINY, progress=False
    )
    np.testing.assert_allclose(result["agreement"].values, 1.0, rtol=1e-6)
    np.testing.assert_array_equal(result["nearest_a"].values, result["nearest_b"].values)
    assert result["nearest_heldout"].sizes == {"size": 2, "heldout": 4}


def test_generalisation_refuses_too_few_fields_and_stochastic_samplers():
    data = torch.randn(5, 8, 8)
    with pytest.raises(ValueError, match="need 8"):
        generalisation(data, [2], heldout=4, model_options=TINY, progress=False)
    with pytest.raises(ValueError, match="deterministic"):
        generalisation(data, [1], heldout=1, sampler="pc", model_options=TINY, progress=False)


def _study(agreement, nearest, heldout=0.8):
    sizes = [1, 10, 100, 1000]
    shape = (len(sizes), 5)
    return xr.Dataset(
        {
            "agreement": (("size", "sample"), np.broadcast_to(np.array(agreement)[:, None], shape)),
            "nearest_a": (("size", "sample"), np.broadcast_to(np.array(nearest)[:, None], shape)),
            "nearest_b": (("size", "sample"), np.broadcast_to(np.array(nearest)[:, None], shape)),
            "nearest_heldout": (("size", "heldout"), np.full((len(sizes), 3), heldout)),
        },
        coords={"size": sizes},
    )


def test_crossover_is_the_first_size_from_which_the_models_generalise():
    assert crossover(_study([0.1, 0.3, 0.95, 0.97], [0.0, 0.2, 0.75, 0.8])) == 100
    assert crossover(_study([0.1, 0.95, 0.5, 0.97], [0.0, 0.8, 0.8, 0.8])) == 1000  # not before
    assert crossover(_study([0.1, 0.3, 0.5, 0.6], [0.0, 0.2, 0.75, 0.8])) is None


def test_command_line_writes_the_study(tmp_path, capsys):
    data = io.save(io.to_dataset(torch.randn(8, 8, 8)), tmp_path / "data.nc")
    out = tmp_path / "study"
    args = [
        "diffusion",
        "memorisation",
        str(data),
        "--sizes",
        "1",
        "2",
        "--heldout",
        "4",
        "--samples",
        "2",
        "--steps",
        "3",
        "--width",
        "4",
        "--levels",
        "2",
        "--train-steps",
        "2",
        "--batch",
        "2",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    assert (out / "memorisation.nc").is_file() and (out / "memorisation.png").is_file()
    assert "N = 2: agreement" in capsys.readouterr().out
