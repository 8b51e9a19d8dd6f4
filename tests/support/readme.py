"""The README's fenced code blocks, for the tests that run them as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
_FENCE = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks(language: str | None = None, *, section: str | None = None
           ) -> list[tuple[str, str]]:
    """``(language, text)`` of every fenced block, in order; only `language`'s, and only
    those of the ``## section`` heading's section, when given."""
    text = README.read_text()
    if section is not None:
        start = text.index(f"## {section}")
        text = text[start:text.index("\n## ", start + 1)]
    return [(lang, body) for lang, body in _FENCE.findall(text)
            if language is None or lang == language]
