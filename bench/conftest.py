"""Shared set-up for the benchmark suite: record what the numbers depend on."""
import platform

import numba
import numpy as np
import pytest


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["numba_threads"] = numba.get_num_threads()
    machine_info["numba_threading_layer_config"] = numba.config.THREADING_LAYER
    machine_info["numba"] = numba.__version__
    machine_info["numpy"] = np.__version__
    machine_info["python"] = platform.python_version()
    try:
        import torch
        machine_info["torch"] = torch.__version__
        machine_info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        machine_info["torch"] = None


@pytest.fixture
def rng():
    return np.random.default_rng(0)
