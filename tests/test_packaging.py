"""rlskit installs into another project: the wheel and sdist build, pass `twine check`, and
carry what `rlskit init` and the pytest plugin need."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_built_wheel_passes_twine_check_and_carries_the_templates(tmp_path):
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                            str(tmp_path), str(ROOT)], capture_output=True, text=True,
                           timeout=600)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheel = next(tmp_path.glob("rlskit-*.whl"))
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict",
                              *map(str, tmp_path.iterdir())], capture_output=True, text=True,
                             timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"rlskit/migrations/template/env.py", "rlskit/migrations/template/script.py.mako",
            "rlskit/testing/plugin.py"} <= names
    metadata = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Provides-Extra: fastapi" in metadata
    assert "rlskit = rlskit.testing.plugin" in zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
