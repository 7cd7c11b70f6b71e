"""Reading .npy and .npz files that may be damaged or hostile, without trusting their headers.

numpy allocates the shape an .npy header claims before it reads a byte of data (for a zip
member it builds numpy.ndarray(count) and fills it), so a 100-byte file claiming a shape of
(10**6, 10**6) asks for terabytes.  Here every array's header is read first and its claimed
size checked against the bytes that are really there (the file's size, or the zip member's
uncompressed size) and against a bound; only then is it read.  Object arrays are refused
(no pickles), and every failure is one error naming the file and the entry.
"""
import os
import struct
import tokenize
import zipfile
import zlib

from numpy.lib import format as npformat

MAX_MEMBERS = 10_000            # arrays in one .npz: a 1,000-layer network has ~6,000
MAX_RATIO = 100                 # uncompressed / compressed size of a deflated member: float
                                # arrays compress by ~1.1x, a zip bomb by ~1000x
ZIP_MAGIC = b"PK\x03\x04"

# What a damaged zip or .npy can raise from zipfile, zlib and numpy's header parser: besides
# the usual OSError/ValueError, a flipped byte can select an unsupported compression method
# (NotImplementedError), set the encryption flag (RuntimeError), cut a struct
# (struct.error), garble a member name (UnicodeDecodeError, a ValueError) or unbalance the
# header's brackets (numpy's fallback parser for Python 2 headers raises tokenize's error).
DAMAGED = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
           RuntimeError, struct.error, OverflowError, SyntaxError, tokenize.TokenError)


class _Refused(Exception):
    """A file refused for a reason of ours (the message is complete but for the file's name);
    kept apart from DAMAGED so that it is never mistaken for numpy's or zipfile's errors."""


def _describe(n_bytes):
    return f"{n_bytes / 2**20:,.1f} MiB" if n_bytes >= 2**20 else f"{n_bytes:,} bytes"


def read_header(f):
    """(shape, dtype, fortran_order, data bytes claimed) of the .npy stream f, which is left at
    the first data byte.  ValueError (without a file name) if it is not an .npy header."""
    version = npformat.read_magic(f)
    read = {(1, 0): npformat.read_array_header_1_0, (2, 0): npformat.read_array_header_2_0}.get(version)
    if read is None:    # 3.0 only differs for utf-8 field names, which no numeric array has
        raise ValueError(f".npy format version {version} is not read here (1.0 and 2.0 are)")
    shape, fortran_order, dtype = read(f)
    if dtype.hasobject:
        raise ValueError(f"it holds Python objects (dtype {dtype}), which would need unpickling; "
                         f"only plain numeric or string arrays are read")
    if any(n < 0 for n in shape):
        raise ValueError(f"its header claims a negative shape {shape}")
    count = 1
    for n in shape:                 # Python ints: numpy's int64 product can wrap around
        count *= n
    return shape, dtype, fortran_order, count * dtype.itemsize


def load_npy(path, what, error=ValueError, max_bytes=None):
    """The array in the .npy file `path`; `error` (a ValueError class) names the file and what
    is wrong.  what: what the file is for, e.g. "predict input"."""
    try:
        with open(path, "rb") as f:
            if f.read(4) == ZIP_MAGIC:
                raise _Refused(f"{what} must be a single .npy array (np.save), but this is a zip "
                               f"archive such as an .npz; save the rows with np.save(path, X).")
            f.seek(0)
            shape, _, _, claimed = read_header(f)
            _check_size(what, shape, claimed, os.fstat(f.fileno()).st_size - f.tell(), max_bytes)
            f.seek(0)
            return npformat.read_array(f, allow_pickle=False)
    except _Refused as e:
        raise error(f"{path}: {e}") from None
    except MemoryError:
        raise error(f"{path}: not enough memory to read {what}.") from None
    except DAMAGED as e:
        raise error(f"{path}: cannot read it as a .npy array ({_reason(e)}); {what} must be saved "
                    f"with np.save(path, X).") from None


def load_npz(path, what, error=ValueError, max_bytes=2**31):
    """{name: array} of every member of the .npz file `path`, after checking each member's
    header against its real size, and their sum (uncompressed) against max_bytes."""
    try:
        with open(path, "rb") as f:
            start = f.read(6)
        if start[:4] != ZIP_MAGIC:
            kind = "a single .npy array" if start == b"\x93NUMPY" else "not a zip archive"
            raise _Refused(f"{what} must be an .npz archive (np.savez); this is {kind}.")
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
            _check_members(what, members, max_bytes)
            return {info.filename[:-4]: _read_member(what, z, info) for info in members}
    except _Refused as e:
        raise error(f"{path}: {e}") from None
    except MemoryError:
        raise error(f"{path}: not enough memory to read {what}.") from None
    except DAMAGED as e:
        raise error(f"{path}: not a readable .npz {what} ({_reason(e)}).") from None


def _check_members(what, members, max_bytes):
    if len(members) > MAX_MEMBERS:
        raise _Refused(f"{what} has {len(members):,} entries, more than the {MAX_MEMBERS:,} "
                       f"allowed; it is not a fastmlp file.")
    names = [m.filename for m in members]
    for name in names:
        if not name.endswith(".npy"):
            raise _Refused(f"entry {name!r} of {what} is not an array (.npy); an .npz written by "
                           f"numpy holds nothing else.")
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise _Refused(f"entry {twice[:-4]!r} appears twice in {what}; the file is damaged.")
    for m in members:   # a member's claimed size must be backed by bytes in the file
        stored = m.compress_type == zipfile.ZIP_STORED
        if (m.file_size != m.compress_size) if stored else (m.file_size > MAX_RATIO * m.compress_size + 2**20):
            raise _Refused(f"entry {m.filename[:-4]!r} of {what} claims {_describe(m.file_size)} from "
                           f"{_describe(m.compress_size)} in the file; it is damaged or a zip bomb.")
    total = sum(m.file_size for m in members)
    if total > max_bytes:
        raise _Refused(f"{what} would unpack to {_describe(total)}, more than the "
                       f"{_describe(max_bytes)} allowed; it is not a fastmlp file, or it is damaged.")


def _read_member(what, z, info):
    where = f"entry {info.filename[:-4]!r} of {what}"
    with z.open(info) as f:
        try:
            shape, _, _, claimed = read_header(f)
        except DAMAGED as e:
            raise _Refused(f"{where} has no valid .npy header ({_reason(e)}).") from None
        _check_size(where, shape, claimed, info.file_size - f.tell(), None)
    with z.open(info) as f:         # its size is real and bounded: numpy may allocate it now
        return npformat.read_array(f, allow_pickle=False)


def _check_size(where, shape, claimed, have, max_bytes):
    if max_bytes is not None and claimed > max_bytes:
        raise _Refused(f"{where} claims shape {shape} ({_describe(claimed)}), more than the "
                       f"{_describe(max_bytes)} allowed.")
    if claimed != have:
        cut = "truncated" if claimed > have else "followed by unexpected bytes"
        raise _Refused(f"{where} claims shape {shape} ({_describe(claimed)}) but holds "
                       f"{_describe(max(have, 0))} of data: the file is {cut}.")


def _reason(e):
    """An exception as one short line (numpy's header errors span lines and quote the header)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."
