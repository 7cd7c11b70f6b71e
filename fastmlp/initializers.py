"""Weight initialisers: each name maps to a distribution whose scale depends on a layer's fan_in
(inputs) and fan_out (outputs).  Biases and batch-norm parameters start at fixed values (network.py)."""
import numbers

import numpy as np

from ._checks import finite

# name -> (distribution, scale): normal draws have std `scale`, uniform ones lie in +-scale.
# fan_in is a layer's inputs, fan_out its outputs.  "lecun" is what the DD2424 bonus report calls
# "Xavier" (N(0, 1/fan_in)); our "xavier" is Glorot's N(0, 2/(fan_in + fan_out)).
INITS = {
    "he": ("normal", lambda fi, fo: np.sqrt(2.0 / fi)),                  # He / Kaiming normal
    "he_uniform": ("uniform", lambda fi, fo: np.sqrt(6.0 / fi)),
    "xavier": ("normal", lambda fi, fo: np.sqrt(2.0 / (fi + fo))),       # Glorot normal
    "xavier_normal": ("normal", lambda fi, fo: np.sqrt(2.0 / (fi + fo))),
    "xavier_uniform": ("uniform", lambda fi, fo: np.sqrt(6.0 / (fi + fo))),
    "lecun": ("normal", lambda fi, fo: np.sqrt(1.0 / fi)),               # LeCun normal
}


def draw_weights(rng, init, fan_in, fan_out):
    """W (fan_in, fan_out) in float64 from the initialiser `init` (a name of INITS or sigma)."""
    if isinstance(init, float):
        return rng.standard_normal((fan_in, fan_out)) * init
    kind, scale = INITS[init]
    a = scale(fan_in, fan_out)
    if kind == "uniform":
        return rng.uniform(-a, a, (fan_in, fan_out))
    return rng.standard_normal((fan_in, fan_out)) * a


def check_init(init):
    """A name of INITS, or a positive sigma as a float; anything else is a ValueError."""
    if isinstance(init, str) and init in INITS:
        return init
    if isinstance(init, numbers.Real) and not isinstance(init, bool) \
            and finite(init) and init > 0:
        return float(init)
    raise ValueError(f"init must be one of {', '.join(INITS)} or a positive float sigma for "
                     f"N(0, sigma^2); got {init!r}.")
