"""Numba kernels of fastmlp, installed as ``fastmlp.kernels``.

Kernels see only arrays and scalars, trust their inputs (the public layer in ``fastmlp``
validates), allocate nothing in their loops, and write every output element from exactly one
thread in a fixed order, so results do not depend on the number of threads.
"""
