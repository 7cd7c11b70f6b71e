"""Optional dependencies (pyproject's extras), imported on first use only.

A missing one is a ValueError, so that the CLI reports it as one line (exit status 2) that names
the extra to install, instead of a traceback ending in ModuleNotFoundError.
"""
import importlib


def require(module, extra, purpose):
    """The module `module`, or a ValueError saying `purpose` needs pip install "fastmlp[extra]"."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"{purpose} needs the {module} package, which cannot be imported ({e}); install "
                         f"it with pip install \"fastmlp[{extra}]\".") from None
