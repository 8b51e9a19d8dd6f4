"""The README's Python examples run as written (in order, sharing one namespace); the
files of "Your first project" run in tests/test_first_project.py."""

from __future__ import annotations

from support.readme import README, blocks


def test_readme_python_examples_run():
    examples = [text for _, text in blocks("python")
                if not text.startswith(("# file: ", "# append: "))]  # the first project's
    assert len(examples) >= 2
    namespace: dict = {}
    for example in examples:
        exec(compile(example, str(README), "exec"), namespace)  # noqa: S102
    assert "tenant_isolation" in namespace["script"]
