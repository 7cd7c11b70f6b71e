"""A compiled function called through its address: compiled once, instead of again inside
every compiled function that calls it.

Why: Numba links a callee's LLVM IR into each caller and optimises and compiles the whole
again, so the products (kernels/gemm.py: the packed kernel, the streamed one, the dot
products, the packing) were compiled four times on a first run: as gemm._run, inside
products' parallel region, in products, and in step.train_step.  Called through its address,
each is compiled once (a cold compile of the step 15.5 -> 11.1 s, measured; the packs called
so from the kernels that use them, not compiled into each: 13.1 -> 12.0 s).

    callable_at(_run, [argtypes, ...])     # at import: the argument types _run is called with
    address(_run, argtypes)                # from Python: _run compiled (or loaded), its address
    call(_run, run, t, task, Y, ...)       # in compiled code: _run(t, task, Y, ...) at address run

The address is an argument of the caller (a plain int64, the fastest argument Numba's dispatch
reads), given at each call from Python, never a constant compiled in: a cached caller then
calls the callee this process compiled or loaded.  The types a callee may be called with are
declared once (callable_at) and `address` compiles it for exactly those, so `call` with any
other argument types is a compile error, never a call through the wrong layout.
One hole is left by Numba's disk cache, which checks only a function's own file: a caller
cached before the declared types changed would call the new callee with the old ones.  So the
addresses travel with a tag of every declaration and the dtype (`tag`), and the caller checks
it against the tag it was compiled with (`check_tag`): a stale cache is an error, not a
silently wrong call.
"""
import hashlib

from llvmlite import ir
from numba.core import callconv, cgutils, types
from numba.core.errors import TypingError
from numba.extending import intrinsic

_DECLARED = {}      # dispatcher -> the tuples of argument types it is called with


def callable_at(dispatcher, signatures):
    """Declare the argument types (tuples of Numba types) `dispatcher` is called with by `call`."""
    _DECLARED[dispatcher] = {tuple(s) for s in signatures}


def tag(dtype):
    """A hash of the signatures declared (callable_at) for this package's kernels and of `dtype`,
    as an int64 (declarations from elsewhere, such as the tests', left out: a process that
    made them would otherwise compile a tag that no other process gives)."""
    package = __name__.rsplit(".", 1)[0] + "."     # names within it only: the cache is shared
    text = repr((str(dtype), sorted((d.py_func.__qualname__, sorted(map(str, s)))
                                    for d, s in _DECLARED.items()
                                    if d.py_func.__module__.startswith(package))))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


@intrinsic
def check_tag(typingctx, value, like):
    """Raise unless `value` is tag(like.dtype) as it was when this caller was compiled."""
    if not isinstance(value, types.Integer) or not isinstance(like, types.Array):
        return None
    expected = tag(like.dtype)

    def codegen(context, builder, signature, llargs):
        stale = builder.icmp_signed("!=", llargs[0], ir.Constant(llargs[0].type, expected))
        with builder.if_then(stale, likely=False):
            context.call_conv.return_user_exc(builder, RuntimeError, (
                "fastmlp's compiled kernels in Numba's disk cache do not match this version: "
                "delete the cache (NUMBA_CACHE_DIR, or kernels/__pycache__) and run again",))
        return context.get_dummy_value()

    return types.none(value, like), codegen


def address(dispatcher, argtypes):
    """The address of `dispatcher` compiled for `argtypes`, one of its declared signatures
    (callers keep it: gemm.native_products, once per dtype)."""
    argtypes = tuple(argtypes)
    if argtypes not in _DECLARED.get(dispatcher, ()):
        raise TypeError(f"{dispatcher.py_func.__qualname__} is not declared callable with "
                        f"{argtypes}: add them to its callable_at")
    dispatcher.compile(argtypes)
    result = dispatcher.overloads[argtypes]
    if result.signature.return_type != types.none:
        raise TypeError(f"{dispatcher.py_func.__qualname__} must return nothing to be called "
                        f"through its address; it returns {result.signature.return_type}")
    at = result.library.get_pointer_to_function(result.fndesc.llvm_func_name)
    if not at:
        raise RuntimeError(f"{dispatcher.py_func.__qualname__}: no native function for "
                           f"{argtypes} in its compiled library")
    return at


@intrinsic(prefer_literal=True)
def call(typingctx, callee, at, *args):
    """callee(*args), compiled elsewhere, at address `at` (an int64 from `address`); an
    exception the callee raises propagates as from a direct call."""
    # the arguments come as Numba hands them to an intrinsic, a tuple of their values built
    # without the references a tuple written in the caller takes (an atomic add and subtract
    # per array: a call with 8 arrays 41 ns that way, 11 ns this way, measured)
    if len(args) == 1 and isinstance(args[0], types.StarArgTuple):
        args = args[0]
    else:
        args = types.StarArgTuple.from_types(args)
    if not isinstance(callee, types.Dispatcher) or at != types.int64:
        return None
    declared = _DECLARED.get(callee.dispatcher, ())
    if tuple(args.types) not in declared:
        raise TypingError(f"{callee.dispatcher.py_func.__qualname__} is called through its "
                          f"address with {tuple(args.types)}, not one of its declared argument "
                          f"types {sorted(map(str, declared))}: declare them (callable_at)")

    def codegen(context, builder, signature, llargs):
        _, address_value, packed = llargs
        argtypes = list(args.types)
        values = [builder.extract_value(packed, i) for i in range(len(argtypes))]
        conv = context.call_conv
        # Numba's own calling convention, as context.call_internal emits a direct call
        fnty = conv.get_function_type(types.none, argtypes)
        fn = builder.inttoptr(address_value, fnty.as_pointer())
        retty = conv.get_return_type(types.none).pointee
        result = cgutils.alloca_once(builder, retty)
        builder.store(cgutils.get_null_value(retty), result)
        excinfo = cgutils.alloca_once(builder, ir.PointerType(callconv.excinfo_t))
        flat = list(conv._get_arg_packer(argtypes).as_arguments(builder, values))
        code = builder.call(fn, [result, excinfo] + flat)
        status = conv._get_return_status(builder, code, builder.load(excinfo))
        with cgutils.if_unlikely(builder, status.is_error):
            conv.return_status_propagate(builder, status)
        return context.get_dummy_value()

    return types.none(callee, at, args), codegen
