"""What the repository itself holds: sources and small fixtures, nothing tied to one machine.

A user's clone has no `../shared` folder and no development machine's paths, and every clone
downloads every tracked file; these tests keep both true of what `git ls-files` lists.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ci_mode import missing_tool

ROOT = Path(__file__).resolve().parents[1]

# The largest fixtures (compressed reads, a screenshot, lock files) are a few hundred KiB.
LARGEST_TRACKED_FILE = 1024 * 1024


def tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        missing_tool("git and a git checkout")
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    return [ROOT / name for name in listing.decode().split("\0") if name]


def test_no_tracked_file_is_larger_than_a_fixture() -> None:
    too_large = {
        str(path.relative_to(ROOT)): path.stat().st_size
        for path in tracked_files()
        if path.is_file() and not path.is_symlink() and path.stat().st_size > LARGEST_TRACKED_FILE
    }
    assert not too_large, f"tracked files over {LARGEST_TRACKED_FILE} bytes: {too_large}"


# Built from parts, so that this file does not name them itself.
MACHINE_PATHS = ["/" + "work" + "/", "../" + "shared" + "/testvectors"]


@pytest.mark.parametrize("needle", MACHINE_PATHS)
def test_no_tracked_file_names_a_development_machine_path(needle: str) -> None:
    naming = [
        str(path.relative_to(ROOT))
        for path in tracked_files()
        if path.is_file()
        and not path.is_symlink()
        and path.stat().st_size <= LARGEST_TRACKED_FILE
        and needle.encode() in path.read_bytes()
    ]
    assert not naming, f"{needle!r} appears in {naming}"
