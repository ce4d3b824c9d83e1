"""Probing the Debian archive: has it moved since an image was built?

The archive state is a digest of the amd64 package indexes that each suite's `Release` file
lists. It changes exactly when the archive may resolve the same recipe to other package
versions, so a cached build is reused only while it is unchanged.
"""

from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import Sequence


def archive_state(mirror_lines: Sequence[str], timeout: float = 10.0) -> str | None:
    """Digest of the archive's amd64 package indexes (from each suite's Release file).

    It changes exactly when the Debian archive may resolve to other package versions. None when
    the mirror cannot be reached (an offline machine then reuses its cached build).
    """
    parts: list[str] = []
    for line in mirror_lines:
        fields = line.split()
        if len(fields) < 4 or fields[0] != "deb":
            return None
        uri, suite, components = fields[1].rstrip("/"), fields[2], fields[3:]
        try:
            with urllib.request.urlopen(f"{uri}/dists/{suite}/Release", timeout=timeout) as r:
                release = r.read().decode("utf-8", "replace")
        except OSError:
            return None
        wanted = {f"{c}/binary-amd64/Packages.xz" for c in components}
        in_sha256 = False
        for row in release.splitlines():
            if not row.startswith(" "):
                in_sha256 = row.startswith("SHA256:")
                continue
            cols = row.split()
            if in_sha256 and len(cols) == 3 and cols[2] in wanted:
                parts.append(f"{suite} {cols[2]} {cols[0]}")
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()
