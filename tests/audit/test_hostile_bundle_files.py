"""A bundle whose files are not files: the audit commands end with an error, never hang.

An attacker (or a broken copy) can put a FIFO where the checkpoint, the log or run.json belongs
(opening it for reading blocks until a writer comes, which never does), or a link to an endless
device such as /dev/urandom or /dev/zero. Each command must answer at once, naming the file. A
run is recorded in-process (tests/recorded.py), copied per case, and the `pox` command line is
called in-process on a thread, so a regression fails the test within seconds instead of hanging
the suite.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from recorded import RecordedRun, record_run

from pox_executor.cli import main
from pox_executor.primitives import NotARegularFileError, read_regular
from pox_executor.provenance.bundle import RUN_FILE
from pox_executor.provenance.log import ATTESTATIONS_FILE, CHECKPOINT_FILE

ANSWER_WITHIN_S = 30.0


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> RecordedRun:
    return record_run(tmp_path_factory.mktemp("hostile") / "good")


def _copy(run: RecordedRun, tmp_path: Path) -> tuple[Path, Path]:
    workdir = tmp_path / "copy"
    shutil.copytree(run.bundle.workdir, workdir, symlinks=True)
    return workdir, workdir / ".pox" / "runs" / run.bundle.run_id


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _device(device: str) -> Callable[[Path], None]:
    def replace(path: Path) -> None:
        path.unlink()
        path.symlink_to(device)

    return replace


def _answer(argv: list[str]) -> int:
    """`pox ARGV` in-process, on a thread: its exit code, or a failure when it does not end."""
    result: list[int | BaseException] = []

    def call() -> None:
        try:
            result.append(main(argv))
        except BaseException as exc:  # SystemExit included: argparse
            result.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(ANSWER_WITHIN_S)
    if thread.is_alive():
        pytest.fail(f"`pox {' '.join(argv)}` did not answer within {ANSWER_WITHIN_S} s")
    answer = result[0]
    if isinstance(answer, BaseException):
        raise answer
    return answer


REPLACEMENTS = {"fifo": _fifo, "urandom": _device("/dev/urandom"), "zero": _device("/dev/zero")}


@pytest.mark.parametrize("name", [CHECKPOINT_FILE, ATTESTATIONS_FILE, RUN_FILE])
@pytest.mark.parametrize("replacement", sorted(REPLACEMENTS))
def test_audit_commands_answer_when_a_bundle_file_is_not_a_file(
    recorded: RecordedRun,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    replacement: str,
) -> None:
    workdir, bundle = _copy(recorded, tmp_path)
    REPLACEMENTS[replacement](bundle / name)
    assert _answer(["verify", str(bundle), "--offline", "--allow-simulated"]) in (1, 2)
    said = capsys.readouterr()
    assert name in said.out + said.err, f"the answer does not name {name}"
    for command in (["show", str(bundle)], ["runs", "-C", str(workdir)]):
        _answer(command)  # any exit code; it ends
    capsys.readouterr()
    produced = next(p for p in workdir.iterdir() if p.suffix == ".txt" and p.name != "data.txt")
    proof = tmp_path / "proof"
    assert _answer(["prove", str(produced), "--run", str(bundle), "-o", str(proof)]) != 0


def test_reading_a_bundle_file_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFileError, match="not a regular file"):
        read_regular(fifo, 1024)
    with pytest.raises(NotARegularFileError):
        read_regular("/dev/zero", 1024)
    with pytest.raises(NotARegularFileError, match="a directory"):
        read_regular(tmp_path, 1024)
    regular = tmp_path / "file"
    regular.write_bytes(b"x" * 10)
    assert read_regular(regular, 10) == b"x" * 10
    with pytest.raises(ValueError, match="larger than 9 bytes"):
        read_regular(regular, 9)


@pytest.mark.parametrize("command", [["verify-proof"], ["verify", "--offline", "--policy"]])
def test_a_fifo_given_as_proof_or_policy_is_a_usage_error_at_once(
    recorded: RecordedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    fifo = tmp_path / "named-pipe"
    os.mkfifo(fifo)
    argv = [*command, str(fifo)]
    if command[0] == "verify":
        argv += ["-C", str(recorded.bundle.workdir)]
    assert _answer(argv) == 2
    assert f"{fifo}: not a regular file" in capsys.readouterr().err
