"""The docker backend's guest client (`datasets.guest`): self-contained, identified by digest.

The client must import with nothing but the standard library and its own `lib/` (the enclave
images have no PoX and no `cryptography`): checked here with this interpreter in isolated mode
without site-packages. Its digest changes with any file, and it runs the dataset commands only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pox_executor.datasets.guest import GUEST_ROOT, build_guest_client, client_digest

_IMPORTS = (
    "import pox_executor.datasets.job, pox_executor.sms.client, pox_executor.cli.dataset; "
    "from pox_executor.enclave.producers import detect_producer; "
    "print(type(detect_producer('auto', measurement='m')).__name__)"
)


def _isolated(lib: Path, code: str) -> subprocess.CompletedProcess[str]:
    # -I: no environment, no user site; -S: no site-packages at all
    return subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-B",
            "-c",
            f"import sys; sys.path.insert(0, {str(lib)!r}); {code}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_client_imports_with_the_standard_library_only(tmp_path: Path) -> None:
    client = build_guest_client(tmp_path / "client")
    assert not list(client.path.rglob("__pycache__"))  # nothing compiled for the host's Python
    result = _isolated(client.path / "lib", _IMPORTS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "SimProducer"
    # and without the client's lib, the same imports fail: the check is not vacuous
    assert _isolated(tmp_path, _IMPORTS).returncode != 0
    launcher = (client.path / "bin" / "pox").read_text()
    assert f'sys.path.insert(0, "{GUEST_ROOT}/lib")' in launcher
    assert (client.path / "bin" / "pox").stat().st_mode & 0o777 == 0o755
    assert all(
        p.stat().st_mode & 0o004 for p in client.path.rglob("*")
    )  # readable by the container's job user
    assert not list(client.path.rglob("__pycache__"))


def test_digest_names_every_file(tmp_path: Path) -> None:
    client = build_guest_client(tmp_path / "client")
    assert client_digest(client.path) == (client.sha256, client.files)
    again = build_guest_client(tmp_path / "again")
    assert again.sha256 == client.sha256  # deterministic
    target = client.path / "lib" / "pox_executor" / "datasets" / "job.py"
    target.write_text(target.read_text() + "\n# changed\n")
    assert client_digest(client.path)[0] != client.sha256


def test_client_runs_the_dataset_commands_only(tmp_path: Path) -> None:
    client = build_guest_client(tmp_path / "client")
    code = "from pox_executor.datasets.guest import guest_main; sys.exit(guest_main(sys.argv[1:]))"
    refused = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            f"import sys; sys.path.insert(0, {str(client.path / 'lib')!r}); {code}",
            "verify",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "only `pox dataset" in refused.stderr
    sample = tmp_path / "hello.txt"
    sample.write_bytes(b"hello world")
    cid = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            f"import sys; sys.path.insert(0, {str(client.path / 'lib')!r}); {code}",
            "dataset",
            "cid",
            str(sample),
            "--cid-profile",
            "unixfs-v0-2015",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cid.returncode == 0, cid.stderr
    assert cid.stdout.startswith("Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD")
