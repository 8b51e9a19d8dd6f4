"""What every command-line test asserts of a refusal."""

from __future__ import annotations

import subprocess


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit code 2 and one line on stderr, ``error: …`` naming every fragment; no
    traceback anywhere."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and result.stderr.count("\n") == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], result.stderr
