"""The deterministic root filesystem tar whose SHA-256 is an image's measurement.

Names sorted byte-wise (depth first), mtimes clamped to `SOURCE_DATE_EPOCH`, numeric owners and
no user or group names, hard links as links to the first name in sort order: the tar depends on
the tree's content only, so the same content always gives the same measurement.
"""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

from pox_executor.enclave.images.recipes import SOURCE_DATE_EPOCH
from pox_executor.primitives import sha256_file


def _ordered(root: Path) -> list[Path]:
    # Depth-first with a stable order: a directory, then everything below it, then its siblings.
    result: list[Path] = []

    def visit(directory: Path) -> None:
        for name in sorted(os.listdir(directory), key=os.fsencode):
            path = directory / name
            result.append(path)
            if path.is_dir() and not path.is_symlink():
                visit(path)

    visit(root)
    return result


def write_deterministic_tar(root: Path, tar_path: Path, epoch: int = SOURCE_DATE_EPOCH) -> str:
    """Tar `root` with sorted names, mtimes clamped to `epoch`, numeric owners, no user names.

    Returns the SHA-256 of the tar (the image measurement). Hard links are kept as links to the
    first name in sort order; sockets and other special files are skipped.
    """
    seen: dict[tuple[int, int], str] = {}
    with tarfile.open(tar_path, "w", format=tarfile.GNU_FORMAT) as tar:
        for path in _ordered(root):
            st = os.lstat(path)
            arcname = path.relative_to(root).as_posix()
            info = tarfile.TarInfo(arcname)
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid, info.gid = st.st_uid, st.st_gid
            info.uname = info.gname = ""
            info.mtime = min(int(st.st_mtime), epoch)
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen:
                    info.type = tarfile.LNKTYPE
                    info.linkname = seen[key]
                    tar.addfile(info)
                    continue
                seen[key] = arcname
                info.size = st.st_size
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                tar.addfile(info)
            elif stat.S_ISFIFO(st.st_mode):
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
    return sha256_file(tar_path)
