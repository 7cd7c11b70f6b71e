"""kernels/ installs as fastmlp.kernels: from any directory, editable or from a built wheel."""
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    assert cfg["package-dir"]["fastmlp.kernels"] == "kernels"
    on_disk = {"fastmlp.kernels"} | {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "fastmlp").rglob("__init__.py")}
    assert on_disk == listed, f"pyproject packages {sorted(listed)} != folders {sorted(on_disk)}"


def test_import_from_another_directory(tmp_path):
    out = subprocess.run([sys.executable, "-c",
                          "import fastmlp.kernels.linear as k, fastmlp; print(k.__file__)"],
                         cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith(os.path.join("kernels", "linear.py"))


@pytest.mark.slow
def test_built_wheel_holds_the_kernels_and_imports(tmp_path):
    """Build the wheel, install it into a fresh virtualenv (reusing this interpreter's numpy
    and numba), and import and run a kernel from outside the repository."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(wheels), str(ROOT)], check=True, capture_output=True)
    wheel = next(wheels.glob("fastmlp-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "fastmlp/kernels/linear.py" in names and "fastmlp/kernels/batchnorm.py" in names
    assert not any(n.startswith("kernels/") for n in names)     # no top-level `kernels`
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True)
    code = ("import numpy as np, fastmlp, fastmlp.kernels.linear as k;"
            "assert 'site-packages' in k.__file__, k.__file__;"
            "X = np.ones((2, 3)); W = np.ones((3, 4)); Y = np.empty((2, 4));"
            "k.linear_forward(Y, X, W, np.zeros(4), False); assert (Y == 3).all();"
            "print(fastmlp.Network([3, 2]).predict(X))")
    out = subprocess.run([str(py), "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
