"""The optimiser rules the grid can time (`bench/grid.py --rule`): plain SGD, SGD with Nesterov
momentum and Adam, for each implementation as its users write them, all computing what
PyTorch's optimiser of that name computes (dampening 0, no weight decay: the L2 term is part of
the cost), so the four implementations do the same work per step.

fastmlp: fastmlp.optim; NumPy: `NumpyRule`, in place on each array; JAX: `jax_rule`, pure
functions inside the step's `jax.jit`; PyTorch: `torch_rule`, torch.optim (its default
implementation for CPU tensors, the multi-tensor `foreach` one).
"""
import numpy as np

RULES = ("sgd", "nesterov", "adam")
MU, B1, B2, EPS = 0.9, 0.9, 0.999, 1e-8


def _known(rule):
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}; got {rule!r}")
    return rule


def fastmlp_rule(rule):
    """fastmlp's optimiser for `rule` (bind it to the network before use)."""
    from fastmlp import optim
    nesterov = _known(rule) == "nesterov"
    return optim.make("momentum" if nesterov else rule, momentum=MU, nesterov=nesterov,
                      beta1=B1, beta2=B2, eps=EPS)


class NumpyRule:
    """A textbook NumPy optimiser: `begin()` once a step, then `apply(key, p, g, eta)` on each
    parameter array p (updated in place) with its gradient g; key names p's memory."""

    def __init__(self, rule):
        self.rule, self.memory, self.t = _known(rule), {}, 0

    def begin(self):
        self.t += 1

    def apply(self, key, p, g, eta):
        if self.rule == "sgd":
            p -= eta * g
            return
        if self.rule == "nesterov":
            buf = self.memory.get(key)
            buf = g.copy() if buf is None else MU * buf + g
            self.memory[key] = buf
            p -= eta * (g + MU * buf)
            return
        m, v = self.memory.get(key, (np.zeros_like(p), np.zeros_like(p)))
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        self.memory[key] = (m, v)
        p -= eta / (1 - B1 ** self.t) * m / (np.sqrt(v) / np.sqrt(1 - B2 ** self.t) + EPS)


def jax_rule(rule, eta):
    """(init(params) -> memory, update(params, grads, memory) -> (params, memory)) for JAX:
    tree maps, to be traced inside the step's jit."""
    import jax
    import jax.numpy as jnp
    tm = jax.tree_util.tree_map
    _known(rule)
    if rule == "sgd":
        return (lambda p: ()), (lambda p, g, mem: (tm(lambda a, d: a - eta * d, p, g), mem))
    if rule == "nesterov":
        def update(p, g, buf):
            buf = tm(lambda b, d: MU * b + d, buf, g)
            return tm(lambda a, d, b: a - eta * (d + MU * b), p, g, buf), buf
        return (lambda p: tm(jnp.zeros_like, p)), update

    def update(p, g, mem):
        m, v, t = mem
        t = t + 1
        m = tm(lambda a, d: B1 * a + (1 - B1) * d, m, g)
        v = tm(lambda a, d: B2 * a + (1 - B2) * d * d, v, g)
        size, root = eta / (1 - B1 ** t), jnp.sqrt(1 - B2 ** t)
        return tm(lambda a, u, w: a - size * u / (jnp.sqrt(w) / root + EPS), p, m, v), (m, v, t)
    return (lambda p: (tm(jnp.zeros_like, p), tm(jnp.zeros_like, p), jnp.float32(0))), update


def torch_rule(rule, params, eta):
    """torch.optim's optimiser for `rule` over params."""
    import torch
    _known(rule)
    if rule == "nesterov":
        return torch.optim.SGD(params, lr=eta, momentum=MU, nesterov=True)
    if rule == "adam":
        return torch.optim.Adam(params, lr=eta, betas=(B1, B2), eps=EPS)
    return torch.optim.SGD(params, lr=eta)
