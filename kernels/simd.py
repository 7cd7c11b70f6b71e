"""Explicit vectors for compiled kernels: a Numba type whose values are LLVM vectors of one
register (64 bytes with AVX-512: 16 float32 or 8 float64 lanes; 32 bytes with AVX2) and the
few operations the products in kernels/gemm.py need.

Why: the register-blocked products there keep 12 independent accumulators in registers
across a long loop.  Written as scalar Numba loops, LLVM either keeps them in memory (a load
and a store per multiply-add) or reorders the sums only with `reassoc`, which this package
leaves off (kernels/_config.py).  Vector values make the blocking explicit: every lane's sum
runs in a fixed order, the same whatever the thread count, and the horizontal sum at the end
is a fixed pairwise tree.

SIMD tells whether the compiling CPU has vector FMAs (AVX2 + FMA, or AVX-512); without them
the products fall back to BLAS (kernels/gemm.py).
Legend: `a` a flat (1-D) contiguous array, `i` an element index into it.  Loads and stores
are unaligned and unchecked: kernels trust their indices.
"""
import os

from llvmlite import ir
from numba import types
from numba.core import cgutils, codegen, config
from numba.extending import intrinsic, models, register_model



def _target_features():
    """The features of the CPU Numba compiles for: NUMBA_CPU_NAME / NUMBA_CPU_FEATURES (used
    for portable caches) override the host, and Numba's own list of host features is asked
    rather than LLVM's, because it drops AVX where Numba turns it off (NUMBA_ENABLE_AVX).  A
    named CPU without a feature list counts as having none of these (its exact features are
    LLVM's to know), which is how the tests build the BLAS fallback on any host."""
    if config.CPU_FEATURES is not None:
        return set(config.CPU_FEATURES.split(","))
    if config.CPU_NAME not in (None, "host"):
        return set()
    return set(codegen.get_host_cpu_features().split(","))


_FEATURES = _target_features()
AVX512 = "+avx512f" in _FEATURES
# The products need fused multiply-adds on vectors of at least 8 float32 lanes, and 16
# vector registers (AVX2 + FMA: every x86-64 CPU since 2013-2015); elsewhere they are BLAS calls.
SIMD = AVX512 or {"+avx2", "+fma"} <= _FEATURES
# one register: 64 bytes with AVX-512, else 32; FASTMLP_VECTOR_BYTES=64 forces 64 (LLVM then
# splits each vector in two on AVX2), which lets this host test the 16-lane code's results
VECTOR_BYTES = int(os.environ.get("FASTMLP_VECTOR_BYTES", 64 if AVX512 else 32))


class Vec(types.Type):
    """VECTOR_BYTES of `dtype` (float32 or float64) as one LLVM vector value."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.lanes = VECTOR_BYTES * 8 // dtype.bitwidth
        super().__init__(name=f"Vec({dtype} x {self.lanes})")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def _address(context, builder, arrty, arr, i):
    data = cgutils.create_struct_proxy(arrty)(context, builder, value=arr).data
    return builder.gep(data, [i])


def _splat(builder, vty, x):
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined), zeros)


@intrinsic
def vload(typingctx, a, i):
    """a[i:i + lanes] as a vector."""
    vt = Vec(a.dtype)

    def codegen(context, builder, sig, args):
        p = _address(context, builder, sig.args[0], args[0], args[1])
        return builder.load(builder.bitcast(p, context.get_value_type(vt).as_pointer()), align=4)
    return vt(a, i), codegen


@intrinsic
def prefetch(typingctx, a, i):
    """Ask for the cache line of a[i] to be brought into L2 (llvm.prefetch, read, locality 2:
    x86's prefetcht1), without waiting for it; a hint, never a fault, whatever i is."""
    def codegen(context, builder, sig, args):
        i8p = ir.IntType(8).as_pointer()
        p = builder.bitcast(_address(context, builder, sig.args[0], args[0], args[1]), i8p)
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
            "llvm.prefetch.p0")
        builder.call(fn, [p, ir.Constant(i32, 0), ir.Constant(i32, 2), ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.none(a, i), codegen


@intrinsic
def vstore(typingctx, a, i, v):
    """a[i:i + lanes] <- v."""
    def codegen(context, builder, sig, args):
        p = _address(context, builder, sig.args[0], args[0], args[1])
        builder.store(args[2], builder.bitcast(p, args[2].type.as_pointer()), align=4)
        return context.get_dummy_value()
    return types.none(a, i, v), codegen


def _lanes_below(builder, n, w):
    """The <n x i1> mask of lanes j < w (w an int64)."""
    i64 = ir.IntType(64)
    wv = _splat(builder, ir.VectorType(i64, n), w)
    return builder.icmp_signed("<", ir.Constant(ir.VectorType(i64, n), list(range(n))), wv)


def _overload(vty):
    """LLVM's name suffix of the vector type vty in an intrinsic's name: v8f32, v4f64, ..."""
    return f"v{vty.count}f{32 if isinstance(vty.element, ir.FloatType) else 64}"


def _load_below(builder, p, vty, w):
    """The vty vector at p with lanes j < w (w an int64) loaded, 0 in the others, not read."""
    zero = ir.Constant(vty, [ir.Constant(vty.element, 0.0)] * vty.count)
    return builder.call(_masked(builder, "load", vty, p.type),
                        [p, ir.Constant(ir.IntType(32), 4), _lanes_below(builder, vty.count, w),
                         zero])


def _masked(builder, op, vty, ptr_type):
    mask = ir.VectorType(ir.IntType(1), vty.count)
    args = ([vty, ptr_type, ir.IntType(32), mask] if op == "store" else
            [ptr_type, ir.IntType(32), mask, vty])
    ret = ir.VoidType() if op == "store" else vty
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, args),
                                          f"llvm.masked.{op}.{_overload(vty)}.p0")


@intrinsic
def vload_part(typingctx, a, i, w):
    """a[i:i + w] in the first w lanes (w <= lanes), 0 in the others, which are not read (a
    masked load: no fault past the end of a, no read of another thread's elements)."""
    vt = Vec(a.dtype)

    def codegen(context, builder, sig, args):
        p = _address(context, builder, sig.args[0], args[0], args[1])
        return _load_below(builder, p, context.get_value_type(vt), args[2])
    return vt(a, i, types.int64), codegen


# Without AVX-512, a masked store is VMASKMOVPS/PD, which AMD's Zen 1-3 run as microcode (~12
# cycles a store, against 1 for a plain one; their masked loads cost what plain ones do): where a
# kernel stores a vector for every few multiply-adds, that was most of its time (gemm_back's
# fused pass, 8 x 1000 x 1000 on znver3, 2 threads: 1215 -> 739 us with the branch in
# vstore_part).  So there a store of all of a vector's lanes takes the plain instruction and only
# an edge's the masked one; the same memory either way.  AVX-512's masked stores cost what plain
# ones do.


@intrinsic
def vstore_part(typingctx, a, i, v, w):
    """a[i:i + w] <- the first w lanes of v (w <= lanes); the elements after them untouched."""
    def codegen(context, builder, sig, args):
        p = _address(context, builder, sig.args[0], args[0], args[1])
        v, w = args[2], args[3]
        vty = v.type

        def masked():
            mask = _lanes_below(builder, vty.count, w)
            builder.call(_masked(builder, "store", vty, p.type),
                         [v, p, ir.Constant(ir.IntType(32), 4), mask])
        if AVX512:
            masked()
            return context.get_dummy_value()
        whole = builder.icmp_signed(">=", w, ir.Constant(w.type, vty.count))
        with builder.if_else(whole, likely=True) as (plain, edge):
            with plain:
                builder.store(v, builder.bitcast(p, vty.as_pointer()), align=4)
            with edge:
                masked()
        return context.get_dummy_value()
    return types.none(a, i, v, types.int64), codegen


def _dup_halves(builder, half, n):
    """The n-lane vector whose two halves are both the n/2-lane vector `half`."""
    return builder.shuffle_vector(half, half, ir.Constant(ir.VectorType(ir.IntType(32), n),
                                                          list(range(n // 2)) * 2))


@intrinsic
def vload_dup(typingctx, a, i):
    """a[i:i + lanes/2] in both halves of a vector (one broadcast load)."""
    vt = Vec(a.dtype)

    def codegen(context, builder, sig, args):
        p = _address(context, builder, sig.args[0], args[0], args[1])
        hty = ir.VectorType(context.get_value_type(vt.dtype), vt.lanes // 2)
        half = builder.load(builder.bitcast(p, hty.as_pointer()), align=4)
        return _dup_halves(builder, half, vt.lanes)
    return vt(a, i), codegen


@intrinsic
def vload_dup_part(typingctx, a, i, w):
    """vload_dup of a[i:i + w] (w < lanes/2), 0 in the lanes past w, which are not read."""
    vt = Vec(a.dtype)

    def codegen(context, builder, sig, args):
        p = _address(context, builder, sig.args[0], args[0], args[1])
        hty = ir.VectorType(context.get_value_type(vt.dtype), vt.lanes // 2)
        return _dup_halves(builder, _load_below(builder, p, hty, args[2]), vt.lanes)
    return vt(a, i, types.int64), codegen


@intrinsic
def vload_pair(typingctx, a, i, j, w):
    """a[i:i + w] in the first half of a vector and a[j:j + w] in the second (w <= lanes/2),
    0 in each half's lanes past w, which are not read."""
    vt = Vec(a.dtype)

    def codegen(context, builder, sig, args):
        hty = ir.VectorType(context.get_value_type(vt.dtype), vt.lanes // 2)
        halves = [_load_below(builder, _address(context, builder, sig.args[0], args[0], at), hty,
                              args[3]) for at in (args[1], args[2])]
        return builder.shuffle_vector(halves[0], halves[1], ir.Constant(
            ir.VectorType(ir.IntType(32), vt.lanes), list(range(vt.lanes))))
    return vt(a, i, j, types.int64), codegen


@intrinsic
def vsplat_at(typingctx, a, i):
    """Every lane = a[i]."""
    vt = Vec(a.dtype)

    def codegen(context, builder, sig, args):
        x = builder.load(_address(context, builder, sig.args[0], args[0], args[1]))
        return _splat(builder, context.get_value_type(vt), x)
    return vt(a, i), codegen


@intrinsic
def vsplat(typingctx, a, x):
    """Every lane = x, converted to a's dtype."""
    vt = Vec(a.dtype)

    def codegen(context, builder, sig, args):
        x = context.cast(builder, args[1], sig.args[1], vt.dtype)
        return _splat(builder, context.get_value_type(vt), x)
    return vt(a, x), codegen


@intrinsic
def vzero(typingctx, a):
    """A vector of zeros of a's dtype."""
    vt = Vec(a.dtype)

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(vt)
        return ir.Constant(vty, [ir.Constant(vty.element, 0.0)] * vt.lanes)
    return vt(a), codegen


@intrinsic
def vfma(typingctx, x, y, acc):
    """x * y + acc, lane by lane, rounded once (llvm.fma)."""
    if not isinstance(x, Vec):
        return None

    def codegen(context, builder, sig, args):
        vty = args[0].type
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3),
                                            f"llvm.fma.{_overload(vty)}")
        return builder.call(fn, list(args))
    return x(x, y, acc), codegen


@intrinsic
def fma(typingctx, x, y, z):
    """x * y + z for scalars of one float type, rounded once (llvm.fma): where a multiply and an
    add must not be left to LLVM to fuse or not (kernels/batchnorm.py's running statistics,
    kernels/optim.py's momentum, whose bits gemm_packed's folded step must reproduce)."""
    if not (isinstance(x, types.Float) and x.bitwidth in (32, 64) and x == y == z):
        return None

    def codegen(context, builder, sig, args):
        t = args[0].type
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(t, [t] * 3),
                                            f"llvm.fma.f{x.bitwidth}")
        return builder.call(fn, list(args))
    return x(x, y, z), codegen


@intrinsic
def div(typingctx, x, y):
    """x / y for scalars of one float type, rounded as a division: without `arcp`, which lets
    LLVM multiply by a reciprocal of y instead (1 ulp off where it did so in kernels/step.py's
    mean loss).  Numba's fast-math pass adds the kernels' flags to every float operation that
    has none, so this one carries `nsz` alone (signed zeros: no effect on the quotient's
    value)."""
    if not (isinstance(x, types.Float) and x == y):
        return None

    def codegen(context, builder, sig, args):
        return builder.fdiv(args[0], args[1], flags=("nsz",))
    return x(x, y), codegen


@intrinsic
def vmul(typingctx, x, y):
    """x * y, lane by lane."""
    if not isinstance(x, Vec):
        return None

    def codegen(context, builder, sig, args):
        return builder.fmul(args[0], args[1])
    return x(x, y), codegen


@intrinsic
def vsum(typingctx, v):
    """The sum of the lanes, as a fixed pairwise tree (halves added until one lane is left)."""
    if not isinstance(v, Vec):
        return None

    def codegen(context, builder, sig, args):
        return _tree(builder, args[0], sig.args[0].lanes)
    return v.dtype(v), codegen


def _tree(builder, x, n):
    """The sum of x's n lanes, halves added until one lane is left."""
    while n > 1:
        h = n // 2
        lo = builder.shuffle_vector(x, x, ir.Constant(ir.VectorType(ir.IntType(32), h), list(range(h))))
        hi = builder.shuffle_vector(x, x, ir.Constant(ir.VectorType(ir.IntType(32), h),
                                                      list(range(h, n))))
        x, n = builder.fadd(lo, hi), h
    return builder.extract_element(x, ir.Constant(ir.IntType(32), 0))


@intrinsic
def vsum_half(typingctx, v, h):
    """The sum of lanes [h lanes/2, (h + 1) lanes/2) of v (h a literal 0 or 1), in vsum's tree
    on half as many lanes: the same bits as vsum of those lanes loaded as a vector of their own."""
    if not isinstance(v, Vec) or not isinstance(h, types.IntegerLiteral):
        return None
    n, first = v.lanes // 2, h.literal_value * (v.lanes // 2)

    def codegen(context, builder, sig, args):
        x = builder.shuffle_vector(args[0], args[0], ir.Constant(ir.VectorType(ir.IntType(32), n),
                                                                list(range(first, first + n))))
        return _tree(builder, x, n)
    return v.dtype(v, h), codegen


@intrinsic
def lanes(typingctx, a):
    """How many of a's elements one vector holds (a compile-time constant)."""
    n = Vec(a.dtype).lanes

    def codegen(context, builder, sig, args):
        return ir.Constant(ir.IntType(64), n)
    return types.intp(a), codegen


@intrinsic
def vtranspose(typingctx, dst, at, dstride, src, sat, sstride, rows, most):
    """An n x n transpose, n = lanes or the literal `most` if smaller (a power of two): row i
    of the block (n values of src from sat + i * sstride) becomes lane i of the n-lane vectors
    stored at dst[at + j * dstride], j = 0 .. n - 1.  Rows i >= `rows` (1 <= rows) read row
    rows - 1 instead, so a block that ends early (a 50-unit layer's last strip of columns,
    the last rows of a part) is read only where it lies and its extra lanes hold copies of a
    real row.  Done in log2(n) rounds of shuffles, each swapping one bit of the row index
    with the same bit of the lane index (a round costs n shuffles, against n * n scalar
    moves)."""
    if not isinstance(most, types.IntegerLiteral):
        return None
    vt = Vec(src.dtype)
    n = min(vt.lanes, most.literal_value)

    def codegen(context, builder, sig, args):
        dty, aty, _, sty, _, _, rty, _ = sig.args
        d, a, ds, s, sa, ss, nrows, _ = args
        nrows = context.cast(builder, nrows, rty, types.int64)
        vty = ir.VectorType(context.get_value_type(vt.dtype), n)
        last = builder.sub(nrows, ir.Constant(nrows.type, 1))
        rows = []
        for i in range(n):
            ii = ir.Constant(nrows.type, i)
            row = builder.select(builder.icmp_signed("<", ii, nrows), ii, last)
            off = builder.add(sa, builder.mul(ss, context.cast(builder, row, types.int64, sig.args[5])))
            p = _address(context, builder, sty, s, off)
            rows.append(builder.load(builder.bitcast(p, vty.as_pointer()), align=4))
        b = 1
        while b < n:
            for i in range(n):
                if i & b:
                    continue
                lo = [j if not j & b else n + j - b for j in range(n)]
                hi = [j + b if not j & b else n + j for j in range(n)]
                m_lo = ir.Constant(ir.VectorType(ir.IntType(32), n), lo)
                m_hi = ir.Constant(ir.VectorType(ir.IntType(32), n), hi)
                rows[i], rows[i + b] = (builder.shuffle_vector(rows[i], rows[i + b], m_lo),
                                        builder.shuffle_vector(rows[i], rows[i + b], m_hi))
            b *= 2
        for j in range(n):
            off = builder.add(a, builder.mul(ds, ir.Constant(ds.type, j)))
            p = _address(context, builder, dty, d, off)
            builder.store(rows[j], builder.bitcast(p, vty.as_pointer()), align=4)
        return context.get_dummy_value()
    return types.none(dst, at, dstride, src, sat, sstride, rows, most), codegen
