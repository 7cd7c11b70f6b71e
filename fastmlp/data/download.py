"""HTTP download with a progress bar and an MD5, staging beside the destination, safe tar extraction.

Nothing half-written ever stands where a loader looks: files arrive as `<name>.part` inside a staging
folder next to the destination, are checked, and the finished folder is renamed into place in one step.
"""
import contextlib
import hashlib
import http.client
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from .errors import DataError
from .places import download_root

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def fetch(url: str, dest: Path) -> str:
    """Download `url` to `dest` (written as dest.part, renamed when complete); return its MD5."""
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
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
    """Yield a fresh folder beside `final` (same file system, so a rename can install it); always removed."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
    except OSError as e:
        raise DataError(f"cannot write into {final.parent} ({e}); choose a writable folder with --data-dir") from e
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
