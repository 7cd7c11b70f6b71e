"""fastmlp: Numba-compiled k-layer MLP classifiers with batch norm and exact gradients."""
from .gradcheck import format_table, gradcheck
from .network import Network

__version__ = "0.1.0"
__all__ = ["Network", "gradcheck", "format_table", "__version__"]
