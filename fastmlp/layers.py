"""Layers of the Keras-style API (fastmlp.Sequential) and the compiler that maps a layer list onto
the one network the engine runs.

The layers hold settings only, no weights and no forward pass: `compile_stack` reads the list
once and returns a `Stack` (the arguments of fastmlp.Network), and every training step then runs
as one compiled call of the fused kernels.  So only the stacks that network computes are accepted:

    [Input(D)]  ( Dense(h) [BatchNorm()] ReLU() [Dropout(r)] ) * k  Dense(C)

BatchNorm in every hidden block or in none, one initialiser for every Dense, one momentum and
epsilon for every BatchNorm.  Anything else is refused with the position of the offending layer
and what to write instead.
"""
import numbers
from dataclasses import dataclass

from .network import INITS, check_init

# Keras's initialiser names -> the engine's
INIT_ALIASES = {"he_normal": "he", "glorot_normal": "xavier_normal",
                "glorot_uniform": "xavier_uniform", "lecun_normal": "lecun"}
BLOCK = "Dense(units) -> [BatchNorm()] -> ReLU() -> [Dropout(rate)]"


class Layer:
    """Base class: a layer is a record of settings; `args()` lists them (repr leaves out those
    at their DEFAULTS)."""
    DEFAULTS = {}

    def args(self):
        return {}

    def __repr__(self):
        shown = {k: v for k, v in self.args().items() if self.DEFAULTS.get(k, object()) != v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def __eq__(self, other):
        return type(self) is type(other) and self.args() == other.args()


class Input(Layer):
    """The input width: Input(3072) or Input((3072,)); optional (fit infers it from X)."""

    def __init__(self, shape):
        width = shape[0] if isinstance(shape, (tuple, list)) and len(shape) == 1 else shape
        self.width = _positive_int("Input shape", width, "the number of features per row, e.g. Input(3072)")

    def args(self):
        return {"shape": (self.width,)}


class Dense(Layer):
    """A fully connected layer of `units` outputs, XW + b.

    activation: None, or "relu" as shorthand for a following ReLU() (a hidden layer without batch
    norm); the last Dense may say "softmax", which it always is.  kernel_initializer: he (He
    normal, the default), he_uniform, xavier / xavier_normal, xavier_uniform, lecun (N(0,
    1/fan_in)), Keras's he_normal, glorot_normal, glorot_uniform, lecun_normal, or a float sigma
    for N(0, sigma^2); one for every Dense.
    input_dim: the input width, on the first Dense only (as Input(input_dim)).
    """

    def __init__(self, units, activation=None, kernel_initializer=None, input_dim=None):
        self.units = _positive_int("Dense units", units, "the layer's number of outputs, e.g. Dense(50)")
        if activation not in (None, "linear", "relu", "softmax"):
            raise ValueError(f"Dense activation must be None, 'relu' or (on the last Dense) 'softmax'; "
                             f"got {activation!r}. Add a ReLU() layer, or leave it out on the last "
                             f"Dense, whose output always goes through softmax.")
        self.activation = None if activation == "linear" else activation
        if kernel_initializer is None:
            self.kernel_initializer = None
        else:
            init = INIT_ALIASES.get(kernel_initializer, kernel_initializer) \
                if isinstance(kernel_initializer, str) else kernel_initializer
            try:
                self.kernel_initializer = check_init(init)
            except ValueError:
                raise ValueError(f"Dense kernel_initializer must be one of {', '.join(INITS)}, "
                                 f"{', '.join(INIT_ALIASES)} or a positive float sigma for N(0, sigma^2); "
                                 f"got {kernel_initializer!r}.") from None
        self.input_dim = None if input_dim is None else _positive_int(
            "Dense input_dim", input_dim, "the number of features per row")

    def args(self):
        out = {"units": self.units}
        for name in ("activation", "kernel_initializer", "input_dim"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


class BatchNorm(Layer):
    """Batch normalisation of a hidden Dense's outputs, with a learnt scale and shift.

    momentum: running = momentum * running + (1 - momentum) * batch statistic (Keras's meaning;
    Network's bn_alpha).  epsilon: added to the variance.  The same for every BatchNorm."""
    DEFAULTS = {"momentum": 0.9, "epsilon": 1e-5}

    def __init__(self, momentum=0.9, epsilon=1e-5):
        ok = isinstance(momentum, numbers.Real) and not isinstance(momentum, bool) and 0 <= momentum <= 1
        if not ok:
            raise ValueError(f"BatchNorm momentum must be a number in [0, 1] (running = momentum * "
                             f"running + (1 - momentum) * batch); got {momentum!r}.")
        ok = isinstance(epsilon, numbers.Real) and not isinstance(epsilon, bool) and 0 <= epsilon < float("inf")
        if not ok:
            raise ValueError(f"BatchNorm epsilon must be a finite number >= 0; got {epsilon!r}.")
        self.momentum, self.epsilon = float(momentum), float(epsilon)

    def args(self):
        return {"momentum": self.momentum, "epsilon": self.epsilon}


BatchNormalization = BatchNorm   # Keras's name


class ReLU(Layer):
    """max(0, x) after a hidden Dense (or its BatchNorm)."""


class Dropout(Layer):
    """Inverted dropout after a hidden block's ReLU: each unit is dropped with probability `rate`
    during training (the rest scaled by 1 / (1 - rate)); evaluation uses every unit as it is."""

    def __init__(self, rate):
        ok = isinstance(rate, numbers.Real) and not isinstance(rate, bool) and 0 <= rate < 1
        if not ok:
            raise ValueError(f"Dropout rate must be a number in [0, 1), the probability of dropping a "
                             f"unit (keep probability 0.9 is rate 0.1); got {rate!r}.")
        self.rate = float(rate)

    def args(self):
        return {"rate": self.rate}


LAYER_TYPES = (Input, Dense, BatchNorm, ReLU, Dropout)


@dataclass
class Stack:
    """What a layer list compiles to: the arguments of fastmlp.Network (input width None until
    the data gives it)."""
    n_features: int | None
    hidden: list            # widths of the hidden Dense layers
    n_classes: int
    batch_norm: bool
    dropout: tuple          # one rate per hidden layer
    init: str | float
    bn_momentum: float
    bn_epsilon: float

    def sizes(self, n_features=None):
        return [n_features or self.n_features] + self.hidden + [self.n_classes]

    def layers(self):
        """The canonical layer list of this stack (what `Sequential.load` rebuilds)."""
        out = [] if self.n_features is None else [Input(self.n_features)]
        init = None if self.init == "he" else self.init
        for width, rate in zip(self.hidden, self.dropout):
            out.append(Dense(width, kernel_initializer=init))
            if self.batch_norm:
                out.append(BatchNorm(self.bn_momentum, self.bn_epsilon))
            out.append(ReLU())
            if rate:
                out.append(Dropout(rate))
        out.append(Dense(self.n_classes, kernel_initializer=init))
        return out


def compile_stack(layers):
    """Check `layers` against what the engine computes and return its Stack."""
    layers = list(layers) if isinstance(layers, (list, tuple)) else layers
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"Sequential needs a non-empty list of layers, e.g. [Dense(50), BatchNorm(), "
                         f"ReLU(), Dense(10)]; got {layers!r}.")
    for i, layer in enumerate(layers):
        if not isinstance(layer, LAYER_TYPES):
            raise ValueError(f"layer {i} is {layer!r}; Sequential takes the fastmlp.layers "
                             f"{', '.join(t.__name__ for t in LAYER_TYPES)}.")
    n_features = None
    if isinstance(layers[0], Input):
        n_features, layers, first = layers[0].width, layers[1:], 1
    else:
        first = 0
    for i, layer in enumerate(layers):
        if isinstance(layer, Input):
            raise ValueError(f"layer {i + first}: Input must be the first layer; got it after "
                             f"{_name(layers[i - 1])}.")

    blocks = []       # per hidden block: (position, dense, batch norm or None, dropout rate)
    i = 0
    while True:
        if i == len(layers):
            raise ValueError(f"the last layer must be Dense(n_classes), the output layer; got "
                             f"{_where(layers, i - 1, first)}. End the list with Dense(n_classes).")
        dense = layers[i]
        if not isinstance(dense, Dense):
            raise ValueError(f"layer {i + first}: expected a Dense layer "
                             f"{'first' if i == 0 else 'to start the next block'}; got "
                             f"{_where(layers, i, first)}. Each hidden block is {BLOCK}, and the "
                             f"list ends with Dense(n_classes).")
        rest = layers[i + 1:]
        if not rest:                                        # the output layer
            if dense.activation == "relu":
                raise ValueError(f"layer {i + first}: the last Dense is the output layer, whose "
                                 f"activation is softmax; got activation='relu'. Drop the activation, "
                                 f"or add Dense(n_classes) after it.")
            break
        if dense.activation == "softmax":
            raise ValueError(f"layer {i + first}: activation='softmax' is only allowed on the last "
                             f"Dense; got it on a hidden Dense followed by {_name(rest[0])}.")
        j = i + 1
        bn = None
        if dense.activation != "relu":
            if isinstance(layers[j], BatchNorm):
                bn, j = layers[j], j + 1
                if j == len(layers):
                    raise ValueError(f"layer {j - 1 + first}: BatchNorm after the last Dense is not "
                                     f"supported: the output layer goes straight into softmax. Remove "
                                     f"it, or add ReLU() and Dense(n_classes) after it.")
            _expect_relu(layers, j, first)
            j += 1
        elif isinstance(layers[j], BatchNorm):
            raise ValueError(f"layer {j + first}: BatchNorm after a ReLU is not supported; the engine "
                             f"normalises before the activation ({BLOCK}). Write Dense({dense.units}), "
                             f"BatchNorm(), ReLU() instead of Dense({dense.units}, activation='relu'), "
                             f"BatchNorm().")
        rate = 0.0
        if j < len(layers) and isinstance(layers[j], Dropout):
            rate, j = layers[j].rate, j + 1
        if j < len(layers) and not isinstance(layers[j], Dense):
            got = layers[j]
            hint = {BatchNorm: "BatchNorm after a ReLU (or Dropout) is not supported; put it between "
                               "Dense and ReLU",
                    ReLU: "a second ReLU does nothing; remove it",
                    Dropout: "one Dropout per hidden block"}[type(got)]
            raise ValueError(f"layer {j + first}: {hint} (each hidden block is {BLOCK}); got "
                             f"{_where(layers, j, first)}.")
        blocks.append((i + first, dense, bn, rate))
        i = j

    output = layers[-1]
    with_bn = [b[0] for b in blocks if b[2] is not None]
    without_bn = [b[0] for b in blocks if b[2] is None]
    if with_bn and without_bn:
        raise ValueError(f"BatchNorm must be in every hidden block or in none (the engine normalises "
                         f"all hidden layers or none); the Dense layers at positions "
                         f"{_list(with_bn)} have it, those at {_list(without_bn)} do not.")
    bns = [b[2] for b in blocks if b[2] is not None]
    if any(bn.args() != bns[0].args() for bn in bns):
        raise ValueError(f"every BatchNorm must have the same momentum and epsilon (the engine "
                         f"shares them); got {', '.join(repr(bn) for bn in bns)}.")
    denses = [b[1] for b in blocks] + [output]
    inits = {d.kernel_initializer for d in denses if d.kernel_initializer is not None}
    if len(inits) > 1:
        raise ValueError(f"every Dense must use the same kernel_initializer (the engine draws all "
                         f"weights with one rule); got {', '.join(map(repr, sorted(inits, key=str)))}.")
    dims = [(k, d.input_dim) for k, d in enumerate(denses) if d.input_dim is not None]
    if dims and (dims[0][0] != 0 or len(dims) > 1):
        raise ValueError("input_dim may only be given on the first Dense layer; the others take "
                         "their input width from the layer before.")
    if dims:
        if n_features is not None and n_features != dims[0][1]:
            raise ValueError(f"Input({n_features}) and the first Dense's input_dim={dims[0][1]} "
                             f"disagree; give the input width once.")
        n_features = dims[0][1]
    if output.units < 2:
        raise ValueError(f"the last Dense is the output layer, one unit per class; it needs at least "
                         f"2 units, got Dense({output.units}).")
    bn0 = bns[0] if bns else BatchNorm()
    return Stack(n_features, [b[1].units for b in blocks], output.units, bool(bns),
                 tuple(b[3] for b in blocks), inits.pop() if inits else "he",
                 bn0.momentum, bn0.epsilon)


def _expect_relu(layers, j, first):
    """Refuse anything but ReLU at position j of a hidden block, saying what to write instead."""
    if isinstance(layers[j], ReLU):
        return
    got = layers[j]
    if isinstance(got, Dropout):
        hint = ("Dropout before ReLU is not supported: the engine drops units after the activation. "
                "Move Dropout after ReLU()")
    elif isinstance(got, BatchNorm):
        hint = "one BatchNorm per hidden block"
    elif isinstance(got, Dense) and j + 1 == len(layers):
        hint = (f"a hidden Dense needs ReLU() before the output layer (two Dense layers in a row "
                f"would be one linear map). Add ReLU() before Dense({got.units})")
    else:
        hint = "a hidden Dense must be followed by ReLU() or BatchNorm(), ReLU()"
    raise ValueError(f"layer {j + first}: {hint} (each hidden block is {BLOCK}); got "
                     f"{_where(layers, j, first)}.")


def _name(layer):
    return repr(layer)


def _where(layers, j, first, missing="nothing"):
    """'Dropout(rate=0.1) at position 3', or `missing` past the end."""
    if j < 0 or j >= len(layers):
        return missing
    before = f" after {_name(layers[j - 1])}" if j > 0 else ""
    return f"{_name(layers[j])}{before}"


def _list(positions):
    return ", ".join(map(str, positions))


def _positive_int(name, value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, {what}; got {value!r}.")
    return int(value)
