"""fastmlp: Numba-compiled k-layer MLP classifiers with batch norm and exact gradients."""
__version__ = "0.1.0"
