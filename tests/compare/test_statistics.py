"""The statistics registry: its contract, shared bins, and a statistic added with one decorator."""

import numpy as np
import pytest
import torch
import xarray as xr

from rgfield.compare import STATISTICS, markdown, register_statistic, summary
from rgfield.compare.statistics import PDF_BINS, PDF_MARGIN


@pytest.fixture
def registered():
    """Names registered during a test, removed afterwards."""
    names = []
    yield names
    for name in names:
        STATISTICS.pop(name, None)


@pytest.mark.parametrize("shape", [(3, 16), (3, 8, 8), (3, 8, 8, 8)])
def test_every_statistic_gives_one_labelled_estimate_per_field(shape):
    fields = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for statistic in STATISTICS.values():
        assert statistic.applies(fields), statistic.name
        values = statistic.bind(fields)(fields[:2])
        assert isinstance(values, xr.DataArray) and values.dims[0] == "sample", statistic.name
        assert values.sizes["sample"] == 2, statistic.name


def test_pdf_bins_are_the_reference_s_with_a_margin_for_tails(free_field):
    ref = free_field(8, size=8)
    wider = 1.1 * free_field(8, size=8, seed=1) + 0.2
    pdf = summary(ref, wider, statistics="pdf")["statistics/pdf"].to_dataset()
    edges = np.asarray(pdf.attrs["edges"])
    width = (float(ref.max()) - float(ref.min())) / PDF_BINS
    assert pdf.sizes["value"] == PDF_BINS + 2 * PDF_MARGIN
    assert edges[PDF_MARGIN] == pytest.approx(float(ref.min()))
    np.testing.assert_allclose(np.diff(edges), width)
    reference = pdf["reference"].values
    assert (reference[:PDF_MARGIN] == 0).all() and (reference[-PDF_MARGIN:] == 0).all()
    assert pdf["estimate"].values[0, -PDF_MARGIN:].sum() > 0  # the shifted tail is counted


def test_a_statistic_is_added_with_one_decorator(free_field, registered):
    @register_statistic(
        "mean_square", title="Mean square", table=True, setup=lambda ref: {"c": float(ref.mean())}
    )
    def mean_square(fields: torch.Tensor, c: float) -> xr.DataArray:
        values = (fields - c).square().mean((1, 2))
        return xr.DataArray(
            values.numpy()[:, None], dims=("sample", "order"), coords={"order": [2]}
        )

    registered.append("mean_square")
    ref = free_field(16, size=8)
    s = summary(ref, {"double": 2 * free_field(16, size=8, seed=1)})
    node = s["statistics/mean_square"].to_dataset().sel(ensemble="double", order=2)
    assert float(node.ratio) == pytest.approx(4, rel=0.35)
    assert float(s.max_abs_z.sel(quantity="statistics/mean_square", ensemble="double")) > 5
    assert "## Mean square" in markdown(s)
    with pytest.raises(ValueError, match="already registered"):
        register_statistic("mean_square", title="again")
    with pytest.raises(ValueError, match="identifier"):
        register_statistic("mean square", title="no")


def test_a_statistic_breaking_the_contract_is_named(free_field, registered):
    @register_statistic("broken", title="Broken")
    def broken(fields: torch.Tensor) -> np.ndarray:
        return fields.mean((1, 2)).numpy()

    registered.append("broken")
    ref = free_field(4, size=8)
    with pytest.raises(ValueError, match="statistic 'broken' must return a DataArray"):
        summary(ref, ref, statistics="broken")
