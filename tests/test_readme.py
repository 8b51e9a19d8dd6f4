"""The README's Python examples run as written (in order, sharing one namespace); the
files of "Your first project" run in tests/test_first_project.py."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_examples_run():
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
              if not b.startswith(("# file: ", "# append: "))]  # the first project's files
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    assert "tenant_isolation" in namespace["script"]
