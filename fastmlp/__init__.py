"""fastmlp: Numba-compiled k-layer MLP classifiers with batch norm and exact gradients."""
from .config import TrainConfig
from .gradcheck import format_table, gradcheck
from .network import Network
from .threads import get_num_threads, set_num_threads
from .train import History, Trainer

__version__ = "0.1.0"
__all__ = ["Network", "TrainConfig", "Trainer", "History", "gradcheck", "format_table",
           "get_num_threads", "set_num_threads", "__version__"]
