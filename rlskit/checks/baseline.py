"""Baselines: a team adopting rlskit on an old database records today's findings once, and
later runs report only new ones.

The baseline is a JSON file of (rule, object) pairs with the message each had. A finding
in it is reported as waived, with the baseline as its reason (the model's own waivers keep
theirs), so it neither counts nor disappears from the report; entries no longer found are
listed, so the file can shrink as the database is fixed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..errors import ConfigError
from .findings import Finding

__all__ = ["apply_baseline", "write_baseline"]

_FORMAT = "rlskit check baseline 1"


def write_baseline(path: Path, findings: list[Finding]) -> int:
    """Record every unwaived finding in a new file at `path`; how many."""
    entries = [{"rule": f.rule, "object": f.object, "message": f.message}
               for f in findings if f.waived is None]
    path.write_text(json.dumps({"format": _FORMAT, "findings": entries}, indent=2) + "\n")
    return len(entries)


def apply_baseline(path: Path, findings: list[Finding]
                   ) -> tuple[list[Finding], list[tuple[str, str]]]:
    """`findings` with those recorded in the baseline waived, and the recorded (rule,
    object) pairs no longer found."""
    try:
        data = json.loads(path.read_text())
        recorded = {(e["rule"], e["object"]) for e in data["findings"]}
        if data.get("format") != _FORMAT:
            raise ValueError(data.get("format"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not an rlskit check baseline ({exc}); delete it to "
                          "record a new one") from None
    reason = f"recorded in the baseline {path.name}"
    marked = [dataclasses.replace(f, waived=reason)
              if f.waived is None and (f.rule, f.object) in recorded else f
              for f in findings]
    found = {(f.rule, f.object) for f in findings}
    return marked, sorted(recorded - found)
