"""HTTP download with a progress bar and an MD5, staging beside the destination, safe tar extraction.

Nothing half-written ever stands where a loader looks: files arrive as `<name>.part` inside a staging
folder next to the destination, are checked, and the finished folder is renamed into place in one step.
A staging folder holds a lock for its owner's life; one whose owner died (kill -9) is removed by the
next download into the same place.  A server that stalls for STALL_S, or a transfer that takes longer
than DEADLINE_S in all, is an error.
"""
import contextlib
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from .. import lock
from .errors import DataError
from .places import download_root

CHUNK_BYTES = 1 << 20
STALL_S = 60            # no byte for this long (connecting, or mid-transfer): give up
DEADLINE_S = 3600       # a whole file (CIFAR-10 is 163 MB) must arrive within this
OWNER = ".owner"        # the lock file inside a staging folder


def fetch(url: str, dest: Path) -> str:
    """Download `url` to `dest` (written as dest.part, renamed when complete); return its MD5."""
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    deadline = time.monotonic() + DEADLINE_S
    try:
        with urllib.request.urlopen(url, timeout=STALL_S) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name) as bar:
                # read1: whatever has arrived, so that a trickling server meets the deadline too
                while chunk := response.read1(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"not finished after {DEADLINE_S:g} s ({size} bytes so far)")
        if total is not None and size != total:
            raise OSError(f"connection closed after {size} of {total} bytes")
    except (OSError, ValueError, http.client.HTTPException) as e:  # URLError is an OSError
        part.unlink(missing_ok=True)
        # HTTPError reads best whole ("HTTP Error 404: Not Found"); other URLErrors by their reason
        reason = e.reason if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError) else e
        raise DataError(
            f"could not download {url} ({reason}); check the network connection and the URL and try "
            "again, or put the files in place by hand"
        ) from e
    part.replace(dest)
    return digest.hexdigest()


def md5_mismatch(url: str, got: str, expected: str) -> DataError:
    return DataError(
        f"{url}: the download has MD5 {got} but {expected} was expected, so it is corrupt or not the "
        "official file; nothing was kept. Try again, and check the URL if it fails again"
    )


def destination(data_dir, folder: str, missing_files) -> Path:
    """Where a download installs: <data_dir, else the default root>/<folder>; data_dir may be that folder.

    An incomplete folder already there is an error: a new download is never mixed into it.
    """
    root = download_root(data_dir)
    final = root if root.name == folder else root / folder
    gaps = missing_files(final) if final.exists() else []
    if gaps:
        raise DataError(f"{final} exists but is incomplete (missing {', '.join(gaps)}); delete it and download again")
    return final


@contextlib.contextmanager
def staging(final: Path):
    """Yield a fresh folder beside `final` (same file system, so a rename can install it); always removed.

    The folder is made as `.new`, locked (OWNER, flock: the kernel drops it when its process dies, even
    on kill -9), and only then renamed to `.part`; so a `.part` folder whose lock is free is a leftover
    of a killed download, and is removed here first.
    """
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(final)
        new = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".new", dir=final.parent))
        owner = open(new / OWNER, "w")
        lock.lock_file(owner.fileno())
        tmp = new.with_suffix(".part")
        new.rename(tmp)
    except OSError as e:
        raise DataError(f"cannot write into {final.parent} ({e}); choose a writable folder with --data-dir") from e
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        owner.close()


def remove_leftovers(final: Path) -> None:
    """Remove the staging folders of downloads into `final` whose process died."""
    for part in final.parent.glob(f".{final.name}.*.part"):
        try:
            fd = os.open(part / OWNER, os.O_RDONLY)
        except FileNotFoundError:
            shutil.rmtree(part, ignore_errors=True)     # made before staging folders were locked
            continue
        except OSError:
            continue
        try:
            if lock.abandoned(fd):                      # else a download in progress
                shutil.rmtree(part, ignore_errors=True)
        finally:
            os.close(fd)


def install(staged: Path, final: Path, missing_files) -> None:
    """Rename the checked download into place: one step, so `final` is never seen half-written."""
    try:
        staged.rename(final)
    except OSError as e:
        if final.is_dir() and not missing_files(final):
            return  # another process installed the same data meanwhile
        raise DataError(f"could not move the download into {final} ({e}); delete {final} and try again") from e


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tarball into `dest`, refusing any member that is not a plain file or folder inside it."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                path = PurePosixPath(m.name)
                if path.is_absolute() or ".." in path.parts or not (m.isfile() or m.isdir()):
                    raise DataError(
                        f"{archive}: refused to extract member {m.name!r}: only plain files and folders "
                        "inside the archive are allowed; the archive is not the official one"
                    )
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12: a second line of defence
                tar.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - older Pythons; the checks above already cover what it would
                tar.extractall(dest, members=members)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{archive}: cannot extract it ({e}); the archive is corrupt, download it again") from e
