"""`pox images lock`: re-resolve an image against the Debian archive and rewrite its lock.

`lock_image` bootstraps the recipe once from the apt sources (apt checks the archive's
signatures), takes the exact package versions and .deb files apt chose, archives them in the
source store, writes `packages.lock`, builds the image from that lock and writes
`expected-measurement`: the two files always change together. If the build fails, both files
are put back as they were. The result says what changed, package by package.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from pox_executor.enclave.images import cache
from pox_executor.enclave.images.build import build_locked
from pox_executor.enclave.images.lockfile import ImageLock
from pox_executor.enclave.images.recipes import load_recipe, lock_path
from pox_executor.enclave.images.rootfs import resolve_debian
from pox_executor.enclave.images.steps import Log, quiet
from pox_executor.enclave.images.store import SourceStore, default_store
from pox_executor.enclave.images.wheels import ensure_wheels


@dataclass(frozen=True)
class LockResult:
    """What `pox images lock` changed for one image."""

    image: str
    old_pins: dict[str, str]  # name (or pypi:name) -> version, from the previous lock
    new_pins: dict[str, str]
    old_measurement: str | None
    new_measurement: str
    lock_diff: str  # unified diff of packages.lock

    @property
    def changed(self) -> bool:
        return self.old_pins != self.new_pins or self.old_measurement != self.new_measurement

    def summary(self) -> list[str]:
        """One line per added, removed or changed package, then the measurement."""
        lines: list[str] = []
        for name in sorted(set(self.old_pins) | set(self.new_pins)):
            old, new = self.old_pins.get(name), self.new_pins.get(name)
            if old == new:
                continue
            if old is None:
                lines.append(f"  + {name} {new}")
            elif new is None:
                lines.append(f"  - {name} {old}")
            else:
                lines.append(f"  ~ {name} {old} -> {new}")
        old_m = self.old_measurement or "(none)"
        verb = "unchanged" if old_m == self.new_measurement else f"{old_m} ->"
        lines.append(f"  measurement {verb} {self.new_measurement}")
        return lines


def pins_of(text: str) -> dict[str, str]:
    """name -> version of any lock text, also the older `name=version` form (for the diff)."""
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        token = raw.strip().split(" ")[0] if raw.strip() else ""
        if not token or token.startswith("#"):
            continue
        if token.startswith("pypi:") and "==" in token:
            name, _, version = token.partition("==")
        elif "=" in token:
            name, _, version = token.partition("=")
        else:
            continue
        pins[name] = version
    return pins


def wheel_pins(wheel_dir: Path) -> tuple[str, ...]:
    """`name==version` of each wheel, as `install_wheels` reports them."""
    return tuple(sorted("==".join(w.name.split("-")[:2]) for w in wheel_dir.glob("*.whl")))


def lock_image(name: str, *, log: Log = quiet, store: Path | None = None) -> LockResult:
    """Re-resolve `name`, rewrite its lock and expected measurement, and build it."""
    recipe = load_recipe(name)
    target = SourceStore(store or default_store())
    lock_file = lock_path(recipe)
    expected_file = recipe.directory / cache.EXPECTED_FILE
    old_lock = lock_file.read_text() if lock_file.is_file() else ""
    old_expected = expected_file.read_text() if expected_file.is_file() else None
    with cache.build_lock(name):
        resolved = resolve_debian(recipe, cache.cache_dir() / name / ".resolve", log)
        for deb, path in resolved:
            target.put_file(path, deb.sha256)
        wheels = ensure_wheels(log)
        lock = ImageLock(tuple(sorted(d for d, _ in resolved)), wheel_pins(wheels / "wheels"))
        new_lock = lock.text(name)
        lock_file.write_text(new_lock)
        try:
            info = build_locked(
                recipe, target, online=True, force=False, log=log, write_expected=True
            )
        except BaseException:
            lock_file.write_text(old_lock)
            if old_expected is None:
                expected_file.unlink(missing_ok=True)
            else:
                expected_file.write_text(old_expected)
            raise
    diff = "".join(
        difflib.unified_diff(
            old_lock.splitlines(keepends=True),
            new_lock.splitlines(keepends=True),
            f"a/{lock_file.parent.name}/{lock_file.name}",
            f"b/{lock_file.parent.name}/{lock_file.name}",
            n=0,
        )
    )
    return LockResult(
        image=name,
        old_pins=pins_of(old_lock),
        new_pins=pins_of(new_lock),
        old_measurement=cache.read_expected_text(old_expected),
        new_measurement=info.measurement,
        lock_diff=diff,
    )
