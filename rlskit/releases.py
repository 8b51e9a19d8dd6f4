"""The oldest server releases rlskit trusts: each supported major's first minor with the
fixes for the row-level security bypasses CVE-2023-2455 (policies of a role applied after
a role change in a cached plan), CVE-2024-10976 (subqueries and SET ROLE) and
CVE-2024-10978 (SET ROLE / SET SESSION AUTHORIZATION reset to the wrong role)."""

from __future__ import annotations

__all__ = ["MINIMUM_RELEASES", "upgrade_needed"]

MINIMUM_RELEASES = {14: (14, 14), 15: (15, 9), 16: (16, 5), 17: (17, 1), 18: (18, 0)}
_CVES = "CVE-2023-2455, CVE-2024-10976 and CVE-2024-10978"


def upgrade_needed(server_version: int) -> str | None:
    """Why a server (``server_version_num``, e.g. 150008) is too old, naming the release to
    upgrade to; None when it has the fixes."""
    major, minor = server_version // 10000, server_version % 10000
    if major < min(MINIMUM_RELEASES):
        return (f"PostgreSQL {major} is not supported (14 or later, with the fixes for "
                f"{_CVES})")
    wanted = MINIMUM_RELEASES.get(major)
    if wanted is not None and (major, minor) < wanted:
        return (f"PostgreSQL {major}.{minor} lacks the fixes for {_CVES}; upgrade to "
                f"{wanted[0]}.{wanted[1]} or later")
    return None
