"""The simulator contract, run by every simulator of rgfield.fields."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from rgfield import fields
from rgfield.fields.cosmic import CosmicConfig
from rgfield.fields.decaying_turbulence import DecayingConfig, decaying_flow
from rgfield.fields.gaussian import GaussianConfig, lattice_free_field_spectrum
from rgfield.fields.phi4 import Phi4, Phi4Config
from rgfield.fields.turbulence import Turbulence2D, TurbulenceConfig

CONFIGS = {  # a small, fast configuration of each registered simulator
    "phi4": lambda: Phi4Config(Phi4(0.5), 8, sampler="metropolis", chains=2, thermalization=20),
    "turbulence": lambda: TurbulenceConfig(
        Turbulence2D(size=16, forcing_wavenumber=2, drag=0.5),
        spacing=0.5,
        block_time=0.5,
        tolerance=1.0,
    ),
    "decaying_turbulence": lambda: DecayingConfig(decaying_flow(16), duration=0.5, batch=2),
    "cosmic": lambda: CosmicConfig(size=8, box=64.0),
    "gaussian": lambda: GaussianConfig(lattice_free_field_spectrum(1.0, 0.5), (8, 8)),
}


def test_every_simulator_is_under_contract():
    assert set(CONFIGS) == set(fields.SIMULATORS)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_simulators_share_one_call_and_one_result(name):
    simulator = fields.SIMULATORS[name]
    config = CONFIGS[name]()
    assert isinstance(config, simulator.config)
    ds = simulator.simulate(config, 3, seed=4, device="cpu", progress=False)
    field = next(iter(ds.data_vars.values()))
    assert field.dims[0] == "sample" and field.sizes["sample"] == 3
    assert field.dims[1:] in (("y", "x"), ("z", "y", "x"))
    for key in ("generator", "seed", "rgfield_version", "created"):
        assert key in ds.attrs, key
    assert ds.attrs["generator"] == f"rgfield.fields.{name}.simulate"
    assert ds.attrs["seed"] == 4
    # the same seed gives the same bits, through the registry or the dispatching simulate
    again = fields.simulate(config, 3, seed=4, progress=False)
    np.testing.assert_array_equal(next(iter(again.data_vars.values())).values, field.values)
    # without a seed a fresh one is drawn and recorded
    fresh = fields.simulate(config, 2, progress=False)
    assert isinstance(fresh.attrs["seed"], int)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_simulators_refuse_bad_calls_by_name(name):
    simulate = fields.SIMULATORS[name].simulate
    with pytest.raises(ValueError, match="samples"):
        simulate(CONFIGS[name](), 0, progress=False)
    with pytest.raises(ValueError, match="config must be"):
        simulate(object(), 2, progress=False)
    with pytest.raises(ValueError, match="device: unknown device 'gpu0'"):
        simulate(CONFIGS[name](), 2, device="gpu0", progress=False)


def test_configs_are_frozen_and_validated():
    config = CONFIGS["cosmic"]()
    with pytest.raises(AttributeError):
        config.size = 16
    with pytest.raises(ValueError, match="shape"):
        GaussianConfig(lattice_free_field_spectrum(1.0, 0.5), (8,))
    with pytest.raises(ValueError, match="spectrum"):
        GaussianConfig(None, (8, 8))


def test_dispatch_refuses_what_is_no_config():
    with pytest.raises(ValueError, match="config must be one of phi4.Phi4Config"):
        fields.simulate(Phi4(0.5), 4)
    with pytest.raises(KeyError, match="no simulator 'ising'"):
        fields.SIMULATORS["ising"]


def test_the_gaussian_spectrum_is_recorded_with_its_parameters():
    ds = fields.simulate(CONFIGS["gaussian"](), 2, seed=0, progress=False)
    assert ds.attrs["spectrum"] == "lattice_free_field_power"
    assert ds.attrs["spectrum_beta"] == 1.0 and ds.attrs["spectrum_m2"] == 0.5
    assert list(ds.attrs["shape"]) == [8, 8]


def test_devices_are_checked_by_name():
    assert fields.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="--device: unknown device 'gpu0'"):
        fields.resolve_device("gpu0", "--device")
    with pytest.raises(ValueError, match="unsupported device 'meta'"):
        fields.resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' needs CUDA"):
            fields.resolve_device("cuda")
    else:
        with pytest.raises(ValueError, match="no device 'cuda:99'"):
            fields.resolve_device("cuda:99")


def test_importing_the_registry_imports_no_simulator():
    code = "import sys, rgfield.fields as f; print(list(f.SIMULATORS), 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    expected = "['phi4', 'turbulence', 'decaying_turbulence', 'cosmic', 'gaussian'] False"
    assert done.stdout.strip() == expected
