"""Downloads against a local HTTP server: MD5, .part files, staging, safe extraction, nothing half-done;
servers that stall or trickle (a stall timeout and an overall deadline), and downloads killed midway
(the next one removes their staging folder, and leaves a live one's alone)."""
import contextlib
import fcntl
import gzip
import hashlib
import importlib
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time

import numpy as np
import pytest

from data_helpers import (cifar_batches, cifar_tarball, fashion_files, isolated_home, py2_pickle,  # noqa: F401
                          serve, tarball, write_files)
from fastmlp.data import DataError, download, load_cifar10, load_fashion_mnist
from fastmlp.data import cifar10, fashion_mnist
from fastmlp.data.download import install

# the module, which fastmlp.data's function download() shadows as an attribute
download_module = importlib.import_module("fastmlp.data.download")

pytestmark = pytest.mark.usefixtures("isolated_home")
ARCHIVE = "cifar-10-python.tar.gz"


@pytest.fixture(autouse=True)
def no_proxy_for_localhost(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")


@pytest.fixture
def cifar(tmp_path):
    """(batches, archive bytes, md5) of a tiny CIFAR-10 in the official archive layout."""
    batches = cifar_batches(6)
    data = cifar_tarball(tmp_path / "build.tar.gz", batches).read_bytes()
    return batches, data, hashlib.md5(data).hexdigest()


def test_cifar10_download_installs_a_loadable_folder(tmp_path, cifar):
    batches, data, md5 = cifar
    with serve({ARCHIVE: data}) as base:
        folder = download("cifar10", tmp_path / "root", url=base + ARCHIVE, md5=md5)
    assert folder == tmp_path / "root" / "cifar-10-batches-py"
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["cifar-10-batches-py"]  # no leftovers
    np.testing.assert_array_equal(load_cifar10(tmp_path / "root").x_test, batches["test_batch"][b"data"])


def test_load_cifar10_download_true_uses_env_url_and_default_root(isolated_home, cifar, monkeypatch):
    batches, data, md5 = cifar
    monkeypatch.setattr(cifar10, "MD5", md5)
    with serve({"mirror/" + ARCHIVE: data}) as base:
        monkeypatch.setenv("FASTMLP_CIFAR10_URL", base + "mirror/" + ARCHIVE)
        raw = load_cifar10(download=True)
    assert str(isolated_home / ".cache" / "fastmlp" / "cifar-10-batches-py") in raw.source
    assert raw.batch_sizes == (6,) * 5


def test_existing_complete_folder_is_not_downloaded_again(tmp_path, cifar):
    _, data, md5 = cifar
    with serve({ARCHIVE: data}) as base:
        first = download("cifar10", tmp_path, url=base + ARCHIVE, md5=md5)
    # the server is gone: a second call must not touch the network
    assert download("cifar10", tmp_path, url=base + ARCHIVE, md5=md5) == first


def test_md5_mismatch_is_an_error_and_leaves_nothing(tmp_path, cifar):
    _, data, _ = cifar
    with serve({ARCHIVE: data}) as base, pytest.raises(DataError) as err:
        download("cifar10", tmp_path / "root", url=base + ARCHIVE)  # checked against the official MD5
    assert f"MD5 {hashlib.md5(data).hexdigest()} but {cifar10.MD5} was expected" in str(err.value)
    assert "nothing was kept" in str(err.value)
    assert list((tmp_path / "root").iterdir()) == []


@pytest.mark.parametrize("files, short, expected", [
    ({}, (), "HTTP Error 404"),
    (None, (ARCHIVE,), "could not download"),  # the connection ends before Content-Length bytes
])
def test_failed_transfers_leave_nothing(tmp_path, cifar, files, short, expected):
    _, data, md5 = cifar
    served = {ARCHIVE: data} if files is None else files
    with serve(served, short=short) as base, pytest.raises(DataError, match=expected):
        download("cifar10", tmp_path / "root", url=base + ARCHIVE, md5=md5)
    assert list((tmp_path / "root").iterdir()) == []


def test_unreachable_server_is_a_clear_error(tmp_path):
    with serve({}) as base:
        pass  # the port is closed again
    with pytest.raises(DataError, match=r"could not download http://127\.0\.0\.1:\d+/x .*check the network"):
        download("cifar10", tmp_path, url=base + "x", md5="0" * 32)


def evil_tarball(path, kind):
    ok = {"cifar-10-batches-py/readme.html": b"hi"}
    if kind in ("../escape", "/etc/escape"):
        return tarball(path, {**ok, kind: b"owned"})
    with tarfile.open(path, "w:gz") as tar:
        link = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        link.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    return path


@pytest.mark.parametrize("kind", ["../escape", "/etc/escape", "symlink", "hardlink"])
def test_unsafe_archives_are_refused_before_extracting(tmp_path, kind):
    data = evil_tarball(tmp_path / "evil.tar.gz", kind).read_bytes()
    root = tmp_path / "deep" / "root"
    with serve({ARCHIVE: data}) as base, pytest.raises(DataError, match="refused to extract member"):
        download("cifar10", root, url=base + ARCHIVE, md5=hashlib.md5(data).hexdigest())
    assert list(root.iterdir()) == [] and not (tmp_path / "deep" / "escape").exists()


@pytest.mark.parametrize("content, expected", [
    ({"other/readme.html": b"x"}, "lacks cifar-10-batches-py/"),
    ({"cifar-10-batches-py/data_batch_1": b"x"}, "lacks data_batch_2"),
])
def test_archive_without_the_batches_is_refused(tmp_path, content, expected):
    data = tarball(tmp_path / "a.tar.gz", content).read_bytes()
    with serve({ARCHIVE: data}) as base, pytest.raises(DataError, match=expected):
        download("cifar10", tmp_path / "root", url=base + ARCHIVE, md5=hashlib.md5(data).hexdigest())
    assert list((tmp_path / "root").iterdir()) == []


def test_archive_with_a_corrupt_batch_is_not_installed(tmp_path):
    batches = cifar_batches(6)
    files = {f"cifar-10-batches-py/{k}": py2_pickle(v) for k, v in batches.items()}
    files["cifar-10-batches-py/data_batch_5"] = files["cifar-10-batches-py/data_batch_5"][:-100]
    data = tarball(tmp_path / "a.tar.gz", files).read_bytes()
    with serve({ARCHIVE: data}) as base, pytest.raises(DataError, match="data_batch_5: truncated or corrupt"):
        download("cifar10", tmp_path / "root", url=base + ARCHIVE, md5=hashlib.md5(data).hexdigest())
    assert list((tmp_path / "root").iterdir()) == []


def test_incomplete_existing_folder_is_an_error(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"x")
    with pytest.raises(DataError, match="exists but is incomplete .*delete it and download again"):
        download("cifar10", tmp_path)


def fashion_md5s(files):
    return {name: hashlib.md5(data).hexdigest() for name, data in files.items()}


def test_fashion_mnist_download(tmp_path):
    files, arrays = fashion_files()
    with serve(files) as base:
        folder = download("fashion-mnist", tmp_path, url=base, md5=fashion_md5s(files))
    assert folder == tmp_path / "fashion-mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)  # no .part files
    np.testing.assert_array_equal(load_fashion_mnist(tmp_path).y_train, arrays["train-labels-idx1-ubyte.gz"])


def test_fashion_mnist_accepts_the_official_content_recompressed(tmp_path, monkeypatch):
    # what Debian did: other .gz bytes, same content; the content MD5 vouches for it
    monkeypatch.setattr(fashion_mnist, "SYSTEM_FOLDER", tmp_path / "not-installed")
    files, _ = fashion_files()
    recompressed = {name: gzip.compress(gzip.decompress(data), mtime=12345) for name, data in files.items()}
    table = {name: ("0" * 32, hashlib.md5(gzip.decompress(data)).hexdigest()) for name, data in files.items()}
    monkeypatch.setattr(fashion_mnist, "FILES", table)
    with serve(recompressed) as base:
        monkeypatch.setenv("FASTMLP_FASHION_MNIST_URL", base.rstrip("/"))
        raw = load_fashion_mnist(tmp_path, download=True)
    assert len(raw.y_train) == 30


def test_fashion_mnist_md5_mismatch_leaves_nothing(tmp_path):
    files, _ = fashion_files()
    md5 = fashion_md5s(files)
    md5["t10k-labels-idx1-ubyte.gz"] = "0" * 32
    with serve(files) as base, pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: the download has MD5"):
        download("fashion-mnist", tmp_path / "root", url=base, md5=md5)
    assert list((tmp_path / "root").iterdir()) == []


def test_fashion_mnist_official_md5_is_checked_by_default(tmp_path):
    files, _ = fashion_files()
    with serve(files) as base, pytest.raises(DataError, match="8d4fb7e6c68d591d4c3dfef9ec88bf0d .or f4a8712d"):
        download("fashion-mnist", tmp_path / "root", url=base)
    assert list((tmp_path / "root").iterdir()) == []


def test_unwritable_destination_says_to_choose_another(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(DataError, match="cannot write into .*--data-dir"):
        download("fashion-mnist", blocker / "sub", url="http://127.0.0.1:9/")


def test_a_download_that_loses_the_race_keeps_the_winners_folder(tmp_path):
    # two processes downloading at once: the second rename fails on the first one's complete folder
    staged, final = tmp_path / "staged" / "fashion-mnist", tmp_path / "fashion-mnist"
    files, _ = fashion_files()
    write_files(staged, files)
    write_files(final, files)
    install(staged, final, fashion_mnist.missing_files)
    (final / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="could not move the download into .*delete .* and try again"):
        install(staged, final, fashion_mnist.missing_files)


# ---- issue 14: stalls, deadlines, killed downloads ---------------------------------------------
@contextlib.contextmanager
def slow_server(mode):
    """127.0.0.1 server: 'silent' accepts and never answers; 'stall' sends headers and 10 of 1000
    bytes, then nothing; 'trickle' sends a byte every 50 ms, forever."""
    done = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)

    def handle(conn):
        with conn:
            conn.recv(65536)
            if mode != "silent":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + bytes(10))
            while not done.wait(0.05):
                if mode == "trickle":
                    with contextlib.suppress(OSError):
                        conn.sendall(b"x")

    def accept():
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        done.set()
        thread.join()
        listener.close()


@pytest.mark.parametrize("mode", ["silent", "stall"])
def test_a_stalled_server_times_out_and_leaves_nothing(tmp_path, monkeypatch, mode):
    monkeypatch.setattr(download_module, "STALL_S", 0.3)
    start = time.monotonic()
    with slow_server(mode) as base, pytest.raises(DataError, match=rf"could not download {base}{ARCHIVE} "
                                                                   r"\(.*timed out.*\)"):
        download("cifar10", tmp_path / "root", url=base + ARCHIVE, md5="0" * 32)
    assert time.monotonic() - start < 10
    assert list((tmp_path / "root").iterdir()) == []


def test_a_trickling_server_meets_the_overall_deadline(tmp_path, monkeypatch):
    """Each byte comes within the stall timeout; the deadline still ends it."""
    monkeypatch.setattr(download_module, "STALL_S", 5.0)
    monkeypatch.setattr(download_module, "DEADLINE_S", 0.4)
    start = time.monotonic()
    with slow_server("trickle") as base, pytest.raises(DataError, match=r"not finished after 0.4 s"):
        download("cifar10", tmp_path / "root", url=base + ARCHIVE, md5="0" * 32)
    assert time.monotonic() - start < 10
    assert list((tmp_path / "root").iterdir()) == []


KILLED = """
import sys
from fastmlp.data import download
download("cifar10", sys.argv[1], url=sys.argv[2], md5="0" * 32)
"""


def test_a_killed_downloads_part_folder_is_removed_by_the_next_one(tmp_path):
    root = tmp_path / "root"
    with slow_server("stall") as base:
        proc = subprocess.Popen([sys.executable, "-c", KILLED, str(root), base + ARCHIVE],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(600):        # until its staging folder exists (importing takes ~1 s)
                if list(root.glob(".*.part")) or proc.poll() is not None:
                    break
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    left = list(root.glob(".*.part"))
    assert len(left) == 1, "the download never started"

    live = root / ".cifar-10-batches-py.live.part"       # another download, still running
    live.mkdir()
    owner = open(live / download_module.OWNER, "w")
    fcntl.flock(owner, fcntl.LOCK_EX)
    old = root / ".cifar-10-batches-py.old.part"         # left by a version without the lock
    old.mkdir()

    batches = cifar_batches(2)
    data = cifar_tarball(tmp_path / "build.tar.gz", batches).read_bytes()
    try:
        with serve({ARCHIVE: data}) as base:
            download("cifar10", root, url=base + ARCHIVE, md5=hashlib.md5(data).hexdigest())
        assert sorted(p.name for p in root.iterdir()) == [live.name, "cifar-10-batches-py"]
    finally:
        owner.close()


def test_leftovers_of_other_datasets_are_not_touched(tmp_path):
    (tmp_path / ".fashion-mnist.x.part").mkdir()
    download_module.remove_leftovers(tmp_path / "cifar-10-batches-py")
    assert (tmp_path / ".fashion-mnist.x.part").is_dir()
