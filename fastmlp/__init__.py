"""fastmlp: Numba-compiled k-layer MLP classifiers with batch norm and exact gradients."""
from .config import TrainConfig
from .divergence import TrainingDiverged
from .gradcheck import format_table, gradcheck
from .layers import BatchNorm, BatchNormalization, Dense, Dropout, Input, ReLU
from .callbacks import Callback, EarlyStopping, ModelCheckpoint
from .models import CyclicLR, FitHistory, Sequential, load_model
from .network import Network
from .threads import get_num_threads, set_num_threads
from .train import History, Trainer

__version__ = "0.1.0"
__all__ = ["Network", "TrainConfig", "Trainer", "History", "TrainingDiverged", "gradcheck", "format_table",
           "get_num_threads", "set_num_threads", "__version__",
           "Sequential", "load_model", "CyclicLR", "FitHistory", "Callback", "EarlyStopping", "ModelCheckpoint",
           "Input", "Dense", "BatchNorm", "BatchNormalization", "ReLU", "Dropout"]


def __getattr__(name):
    # MLPClassifier needs scikit-learn, an optional extra: imported on first use only (and left
    # out of __all__, so that `from fastmlp import *` works without scikit-learn)
    if name == "MLPClassifier":
        from .sklearn import MLPClassifier
        return MLPClassifier
    raise AttributeError(f"module 'fastmlp' has no attribute {name!r}")
