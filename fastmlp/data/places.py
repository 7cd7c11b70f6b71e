"""Where datasets are looked for, and where downloads go."""
import os
from pathlib import Path

ENV_ROOT = "FASTMLP_DATA"


def cache_root() -> Path:
    return Path.home() / ".cache" / "fastmlp"


def search_roots(root=None) -> list[Path]:
    """The folders to search, in order: `root`, then $FASTMLP_DATA, then ~/.cache/fastmlp."""
    roots = [Path(root).expanduser()] if root is not None else []
    if os.environ.get(ENV_ROOT):
        roots.append(Path(os.environ[ENV_ROOT]).expanduser())
    roots.append(cache_root())
    unique = []
    for r in roots:
        if r not in unique:
            unique.append(r)
    return unique


def download_root(root=None) -> Path:
    """Where a download goes: the first of the search roots."""
    return search_roots(root)[0]
