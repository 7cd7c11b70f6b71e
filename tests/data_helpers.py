"""Builders and fixtures shared by the tests/test_data_*.py files.

Fake datasets are written in the official formats, byte for byte: CIFAR-10 batches as the Python-2
pickles the official archive holds (the opcodes below are those of the real data_batch_1), and
Fashion-MNIST as gzip'd IDX files. A local HTTP server stands in for the official sites.
"""
import contextlib
import gzip
import http.server
import io
import os
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

# ../shared/data beside the repository (as in conftest.py): real data, read in place, never copied.
SHARED_DATA = Path(os.environ.get("FASTMLP_SHARED_DATA",
                                  Path(__file__).resolve().parents[1].parent / "shared" / "data"))
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
CIFAR_LABELS = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
                b"dog", b"frog", b"horse", b"ship", b"truck"]


def shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (the read-only ../shared/data beside the repository)")
    return path


def debian_fashion() -> Path:
    if not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"{DEBIAN_FASHION} is absent: apt-get install dataset-fashion-mnist")
    return DEBIAN_FASHION


@pytest.fixture
def isolated_home(tmp_path, monkeypatch):
    """No test reads or writes the real ~/.cache/fastmlp or $FASTMLP_DATA."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("FASTMLP_DATA", "FASTMLP_CIFAR10_URL", "FASTMLP_FASHION_MNIST_URL"):
        monkeypatch.delenv(var, raising=False)
    return home


# --- CIFAR-10 as the official Python-2 pickles ------------------------------------------------------

def _py2(obj) -> bytes:
    """Protocol-2 opcodes for obj as Python 2's cPickle wrote them (str as SHORT_BINSTRING/BINSTRING)."""
    if isinstance(obj, bytes):
        return (b"U" + bytes([len(obj)]) if len(obj) < 256 else b"T" + struct.pack("<I", len(obj))) + obj
    if isinstance(obj, bool) or obj is None:
        return {True: b"\x88", False: b"\x89", None: b"N"}[obj]
    if isinstance(obj, int):
        if 0 <= obj < 256:
            return b"K" + bytes([obj])
        return b"M" + struct.pack("<H", obj) if 0 <= obj < 65536 else b"J" + struct.pack("<i", obj)
    if isinstance(obj, tuple):
        return b"(" + b"".join(_py2(v) for v in obj) + b"t"
    if isinstance(obj, list):
        return b"](" + b"".join(_py2(v) for v in obj) + b"e"
    if isinstance(obj, dict):
        return b"}(" + b"".join(_py2(k) + _py2(v) for k, v in obj.items()) + b"u"
    if isinstance(obj, np.ndarray) and obj.dtype == np.uint8:
        dtype = b"cnumpy\ndtype\n" + _py2((b"u1", 0, 1)) + b"R" + _py2((3, b"|", None, None, None, -1, -1, 0)) + b"b"
        return (b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n" + _py2((0,)) + _py2(b"b") + b"tR"
                + b"(" + _py2(1) + _py2(obj.shape) + dtype + _py2(False) + _py2(obj.tobytes()) + b"tb")
    raise TypeError(type(obj))


def py2_pickle(obj) -> bytes:
    return b"\x80\x02" + _py2(obj) + b"."


def cifar_batches(n_per_batch=12, seed=0):
    """{file name: dict} for a tiny CIFAR-10 in the official layout (every class in every batch)."""
    rng = np.random.default_rng(seed)
    batches = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        labels = [int(v) for v in rng.permutation(np.arange(n_per_batch) % 10)]
        batches[name] = {
            b"batch_label": f"training batch {i + 1} of 5".encode() if i < 5 else b"testing batch 1 of 1",
            b"labels": labels,
            b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(n_per_batch)],
        }
    batches["batches.meta"] = {b"num_cases_per_batch": n_per_batch, b"label_names": CIFAR_LABELS, b"num_vis": 3072}
    return batches


def write_cifar(folder: Path, batches) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in batches.items():
        (folder / name).write_bytes(py2_pickle(content))
    return folder


def tarball(path: Path, files: dict) -> Path:
    """A .tar.gz with {member name: bytes}."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def cifar_tarball(path: Path, batches) -> Path:
    return tarball(path, {f"cifar-10-batches-py/{k}": py2_pickle(v) for k, v in batches.items()})


# --- Fashion-MNIST as gzip'd IDX files ---------------------------------------------------------------

def idx_bytes(a: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(np.uint8).tobytes()


def fashion_files(n_train=30, n_test=20, seed=0) -> dict:
    """{file name: gzip bytes} of a tiny Fashion-MNIST, and the arrays they hold under 'arrays'."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        arrays[f"{part}-images-idx3-ubyte.gz"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{part}-labels-idx1-ubyte.gz"] = (np.arange(n) % 10).astype(np.uint8)
    return {name: gzip.compress(idx_bytes(a), mtime=0) for name, a in arrays.items()}, arrays


def write_files(folder: Path, files: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


# --- a local stand-in for the official download sites --------------------------------------------------

@contextlib.contextmanager
def serve(files: dict, short=()):
    """Serve {path: bytes} on 127.0.0.1 (ephemeral port); paths in `short` announce more bytes than they send."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            data = files.get(self.path.lstrip("/"))
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data) * (2 if self.path.lstrip("/") in short else 1)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # keep the test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # a short poll interval: shutdown() waits up to one interval, 0.5 s by default, in every test
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
