"""Memory of a Network, allocated once: the flat parameter buffers with named views
(`flat_views`), and per batch size the activations and gradients of a forward and backward
(`Workspace`), laid out as kernels/step.py's fused step reads them."""
from collections import OrderedDict

import numpy as np


LINE = 64    # bytes of a cache line


def aligned_empty(shape, dtype):
    """An uninitialised array whose first element starts a cache line (NumPy aligns to 16
    bytes): see Workspace."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    raw = np.empty(size + LINE // dtype.itemsize, dtype)
    skip = (-raw.ctypes.data % LINE) // dtype.itemsize
    return raw[skip:skip + size].reshape(shape)


def flat_views(shapes, dtype):
    """One contiguous buffer, a dict of named views into it and their offsets.  A weight
    matrix W (fan_in, fan_out) is stored as its transpose, one row per output unit (as the
    products in kernels/gemm.py read it), and its view is the transpose of that block."""
    total = sum(int(np.prod(s)) for s in shapes.values())
    flat = aligned_empty(total, dtype)      # the first layer's rows start lines, as its input's
    flat[...] = 0
    views, offsets, at = OrderedDict(), {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        if name.startswith("W"):
            views[name] = flat[at:at + size].reshape(shape[::-1]).T
        else:
            views[name] = flat[at:at + size].reshape(shape)
        offsets[name] = at
        at += size
    return flat, views, offsets


class Workspace:
    """Activations (and, in training, gradients) for one batch size, allocated once as one
    flat buffer `buf` with the offset table `wsl` the fused step reads (kernels/step.py) and
    named views of it for the per-kernel path.
    Every array in `buf` starts a cache line: the step cuts a batch norm into runs of whole
    lines of columns on threads (kernels/gemm.py, BN_FORWARD), and where a row's runs did not
    start lines the threads wrote the line they shared in turn (500 x 1024 on 2 threads: the
    forward 0.41x of one thread's time, measured); rows of a multiple of 64 bytes then start
    lines all (at other widths each part's edge still shares a line a row)."""

    def __init__(self, net, n, train):
        widths = net.sizes[1:]
        L = len(widths)
        self.n = n
        self.wsl = np.full((L, 9), -1, np.int64)
        at = 0

        line = max(1, LINE // np.dtype(net.dtype).itemsize)

        def take(l, col, size):
            nonlocal at
            at = -(-at // line) * line          # the next line
            self.wsl[l, col] = at
            at += size

        for l, w in enumerate(widths):
            last = l == L - 1
            take(l, 0, n * w)                                  # Z
            if not last:
                take(l, 1, n * w)                              # H
            if train:
                if not last and net.batch_norm:
                    take(l, 2, n * w)                          # Xhat
                    take(l, 5, w)                              # mean
                    take(l, 6, w)                              # inv_std
                take(l, 3, n * w)                              # dZ
                if not last:
                    take(l, 4, n * w)                          # dH
        take(L - 1, 7, n * widths[-1])                         # P
        take(L - 1, 8, n)                                      # losses
        self.buf = aligned_empty(at, net.dtype)
        self.buf[...] = 0

        def view(l, col, shape):
            off = self.wsl[l, col]
            return None if off < 0 else self.buf[off:off + int(np.prod(shape))].reshape(shape)

        self.Z = [view(l, 0, (n, w)) for l, w in enumerate(widths)]
        self.H = [view(l, 1, (n, w)) for l, w in enumerate(widths[:-1])]
        self.Xhat = [view(l, 2, (n, w)) for l, w in enumerate(widths[:-1])]
        self.mean = [view(l, 5, (w,)) for l, w in enumerate(widths[:-1])]
        self.inv_std = [view(l, 6, (w,)) for l, w in enumerate(widths[:-1])]
        self.dZ = [view(l, 3, (n, w)) for l, w in enumerate(widths)]
        self.dH = [view(l, 4, (n, w)) for l, w in enumerate(widths[:-1])]
        self.P = view(L - 1, 7, (n, widths[-1]))               # class probabilities
        self.losses = view(L - 1, 8, (n,))
        self.X = None                                          # input of the last forward
        self.Xrows = None                                      # batch gathered by row numbers
        self.Xahead = None           # the next one, gathered ahead by kept threads (pool.ahead)
        self.no_dX = np.empty((0, 0), net.dtype)               # layer 1 needs no input grad
