"""`pox verify` catches tampering with a run bundle, and says what broke.

One good run of a three-job workflow is made for the module; each case copies its working
directory, breaks one thing (an output file, an envelope, the checkpoint, the order of the log,
a signature, run.json) and expects `pox verify --allow-simulated` to exit 1 with a message naming
the check that failed. Then the simulated-evidence policy, `pox prove` / `pox verify-proof` with
their own tamper cases, and usage errors (exit 2).
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from poxrun import ATTESTATIONS, only_bundle, pox, run_snakemake

from pox_executor.provenance.checkpoint import vkey
from pox_executor.provenance.dsse import serialize_envelope, sign_envelope
from pox_executor.provenance.keys import SigningKey

pytestmark = pytest.mark.integration

SNAKEFILE = """\
rule all:
    input: "b.txt", "c.txt"

rule a:
    input: "data.txt"
    output: "a.txt"
    shell: "cat {input} > {output}"

rule b:
    input: "a.txt"
    output: "b.txt"
    shell: "tr a-z A-Z < {input} > {output}"

rule c:
    input: "a.txt"
    output: "c.txt"
    shell: "rev {input} > {output}"
"""


@dataclass(frozen=True)
class Copy:
    workdir: Path
    bundle: Path

    @property
    def log(self) -> Path:
        return self.bundle / ATTESTATIONS

    def lines(self) -> list[bytes]:
        return self.log.read_bytes().splitlines()

    def write_lines(self, lines: list[bytes]) -> None:
        self.log.write_bytes(b"".join(line + b"\n" for line in lines))

    def line_of(self, rule: str) -> int:
        """Index of the record of `rule` in the log."""
        for index, line in enumerate(self.lines()):
            statement = json.loads(base64.b64decode(json.loads(line)["payload"]))
            if statement["predicate"]["buildDefinition"]["externalParameters"]["rule"] == rule:
                return index
        raise AssertionError(f"no record of rule {rule}")

    def verify(self, *args: str) -> tuple[int, str]:
        result = pox("verify", "--allow-simulated", *args, cwd=self.workdir)
        return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("tamper") / "good"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(SNAKEFILE)
    (workdir / "data.txt").write_text("alpha\n")
    run_snakemake(workdir)
    return workdir


@pytest.fixture
def copy(good_run: Path, tmp_path: Path) -> Copy:
    workdir = tmp_path / "copy"
    shutil.copytree(good_run, workdir)
    return Copy(workdir, only_bundle(workdir))


def flip_char(text: str, position: int) -> str:
    """Replace one character by another of the same alphabet (base64 stays base64)."""
    replacement = "B" if text[position] == "A" else "A"
    return text[:position] + replacement + text[position + 1 :]


def flip_envelope_field(copy: Copy, rule: str, field: str) -> None:
    lines = copy.lines()
    index = copy.line_of(rule)
    envelope = json.loads(lines[index])
    if field == "payload":
        envelope["payload"] = flip_char(envelope["payload"], len(envelope["payload"]) // 2)
    else:
        sig = envelope["signatures"][0]["sig"]
        envelope["signatures"][0]["sig"] = flip_char(sig, 10)
    lines[index] = serialize_envelope(envelope)
    copy.write_lines(lines)


def edit_checkpoint(copy: Copy, line_no: int, edit: Callable[[str], str]) -> None:
    path = copy.bundle / "checkpoint"
    lines = path.read_text().split("\n")
    lines[line_no] = edit(lines[line_no])
    path.write_text("\n".join(lines))


def other_root(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def flip_output_byte(copy: Copy) -> None:
    path = copy.workdir / "b.txt"
    data = bytearray(path.read_bytes())
    data[0] ^= 0x20
    path.write_bytes(bytes(data))


def drop_line(copy: Copy) -> None:
    lines = copy.lines()
    del lines[copy.line_of("b")]
    copy.write_lines(lines)


def duplicate_line(copy: Copy) -> None:
    lines = copy.lines()
    copy.write_lines([*lines, lines[copy.line_of("a")]])


def reorder_lines(copy: Copy) -> None:
    lines = copy.lines()
    copy.write_lines([lines[-1], *lines[:-1]])


def swap_two(copy: Copy) -> None:
    lines = copy.lines()
    i, j = copy.line_of("b"), copy.line_of("c")
    lines[i], lines[j] = lines[j], lines[i]
    copy.write_lines(lines)


def resign_with_foreign_key(copy: Copy) -> None:
    lines = copy.lines()
    index = copy.line_of("b")
    payload = base64.b64decode(json.loads(lines[index])["payload"])
    lines[index] = serialize_envelope(sign_envelope(payload, SigningKey.generate()))
    copy.write_lines(lines)


def delete_output(copy: Copy) -> None:
    (copy.workdir / "c.txt").unlink()


def append_bytes(copy: Copy) -> None:
    with open(copy.log, "ab") as handle:
        handle.write(b'{"payload":"forged"')


def flip_source_byte(copy: Copy) -> None:
    (copy.workdir / "data.txt").write_text("alphA\n")


def replace_session_key(copy: Copy) -> None:
    path = copy.bundle / "run.json"
    meta = json.loads(path.read_text())
    session = meta["sessions"][0]
    key = SigningKey.generate().public_key
    session.update(public_key=key.hex(), keyid=key.keyid, vkey=vkey(session["key_name"], key))
    path.write_text(json.dumps(meta, indent=2))


# case -> (tamper, substrings the output must contain)
CASES: dict[str, tuple[Callable[[Copy], None], list[str]]] = {
    "output-file-byte": (
        flip_output_byte,
        ["b.txt on disk has sha256", "the file changed after the run"],
    ),
    "envelope-payload-byte": (
        lambda c: flip_envelope_field(c, "b", "payload"),
        ["does not verify over the payload", "the envelope was altered", "merkle-root"],
    ),
    "envelope-signature-byte": (
        lambda c: flip_envelope_field(c, "b", "sig"),
        ["does not verify over the payload", "the envelope was altered", "merkle-root"],
    ),
    "checkpoint-root": (
        lambda c: edit_checkpoint(c, 2, other_root),
        ["ERROR   checkpoint", "does not verify; the note was altered or forged"],
    ),
    "checkpoint-size": (
        lambda c: edit_checkpoint(c, 1, lambda size: str(int(size) - 1)),
        ["ERROR   checkpoint", "does not verify; the note was altered or forged"],
    ),
    "checkpoint-signature": (
        lambda c: edit_checkpoint(c, 4, lambda line: flip_char(line, len(line) - 8)),
        ["ERROR   checkpoint", "does not verify; the note was altered or forged"],
    ),
    "dropped-line": (
        drop_line,
        ["the checkpoint covers 4 envelopes but the log holds only 3: envelopes were removed"],
    ),
    "duplicated-line": (
        duplicate_line,
        ["identical to line", "a record was duplicated", "after the checkpoint of a finished run"],
    ),
    "reordered-lines": (
        reorder_lines,
        ["merkle-root", "changed, reordered, swapped or inserted", "after its child"],
    ),
    "two-envelopes-swapped": (
        swap_two,
        ["merkle-root", "changed, reordered, swapped or inserted"],
    ),
    "resigned-with-foreign-key": (
        resign_with_foreign_key,
        ["which is not a session key of this run", "merkle-root"],
    ),
    "output-file-deleted": (delete_output, ["c.txt is missing on disk"]),
    "source-file-byte": (
        flip_source_byte,
        ["data.txt on disk has sha256", "the file changed after the run"],
    ),
    "checkpoint-deleted": (
        lambda c: (c.bundle / "checkpoint").unlink(),
        ["the checkpoint file is missing"],
    ),
    "log-deleted": (
        lambda c: c.log.unlink(),
        ["the checkpoint covers 4 envelopes but the log holds only 0: envelopes were removed"],
    ),
    "bytes-appended-after-the-run": (
        append_bytes,
        ["bytes after the last complete line of a finished run"],
    ),
    "session-key-replaced": (
        replace_session_key,
        ["session-evidence", "that signed", "not a session key of this run"],
    ),
}


def test_the_untouched_copy_verifies(copy: Copy) -> None:
    code, output = copy.verify()
    assert code == 0, output


@pytest.mark.parametrize("case", sorted(CASES))
def test_tampering_fails_verification_and_names_what_broke(copy: Copy, case: str) -> None:
    tamper, expected = CASES[case]
    tamper(copy)
    code, output = copy.verify()
    assert code == 1, output
    assert "FAILED" in output
    for text in expected:
        assert text in output, f"{case}: {text!r} not in:\n{output}"


def test_json_report_names_the_failed_check(copy: Copy) -> None:
    swap_two(copy)
    code, output = copy.verify("--json")
    assert code == 1
    report = json.loads(output)
    assert report["ok"] is False
    assert {f["check"] for f in report["findings"] if f["level"] == "error"} == {"merkle-root"}


# --- simulated evidence ---------------------------------------------------------------------


def test_simulated_evidence_fails_strict_verification(good_run: Path) -> None:
    result = pox("verify", cwd=good_run)
    assert result.returncode == 1
    assert "simulated" in result.stderr
    assert "--allow-simulated" in result.stderr


def test_allow_simulated_passes_and_says_confidentiality_was_not_checked(good_run: Path) -> None:
    result = pox("verify", "--allow-simulated", cwd=good_run)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    assert "confidentiality and hardware-backed execution were NOT" in result.stdout


# --- proofs ---------------------------------------------------------------------------------


@pytest.fixture
def proof(copy: Copy) -> Path:
    path = copy.workdir / "b.proof"
    result = pox("prove", "b.txt", "-o", str(path), cwd=copy.workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    return path


def verify_proof(proof: Path, *args: str) -> tuple[int, str]:
    result = pox("verify-proof", str(proof), *args, cwd=proof.parent.parent)
    return result.returncode, result.stdout + result.stderr


def test_prove_and_verify_proof_round_trip(proof: Path) -> None:
    assert proof.read_text().startswith("c2sp.org/tlog-proof@v1\n")
    code, output = verify_proof(proof, str(proof.parent / "b.txt"), "--allow-simulated")
    assert code == 0, output
    assert "rule=b" in output
    assert "confidentiality" in output
    # alone, away from the run: the proof needs nothing else
    away = proof.parent.parent / "elsewhere" / "b.proof"
    away.parent.mkdir()
    shutil.copy(proof, away)
    shutil.rmtree(proof.parent / ".pox")
    assert verify_proof(away, "--allow-simulated")[0] == 0


def test_proof_of_simulated_run_fails_strictly(proof: Path) -> None:
    code, output = verify_proof(proof)
    assert code == 1
    assert "simulated" in output


def test_proof_with_a_flipped_inclusion_hash_fails(proof: Path) -> None:
    lines = proof.read_text().split("\n")
    index = next(i for i, line in enumerate(lines) if line.startswith("index ")) + 1
    lines[index] = other_root(lines[index])
    proof.write_text("\n".join(lines))
    code, output = verify_proof(proof, "--allow-simulated")
    assert code == 1
    assert "inclusion" in output


def test_proof_checked_against_another_file_fails(proof: Path) -> None:
    code, output = verify_proof(proof, str(proof.parent / "c.txt"), "--allow-simulated")
    assert code == 1
    assert "c.txt has sha256" in output
    assert "the proof is for" in output


def test_proof_with_edited_extra_fails(proof: Path) -> None:
    lines = proof.read_text().split("\n")
    index = next(i for i, line in enumerate(lines) if line.startswith("extra "))
    extra = json.loads(base64.b64decode(lines[index].removeprefix("extra ")))
    extra["file"]["sha256"] = "00" * 32
    lines[index] = "extra " + base64.b64encode(json.dumps(extra).encode()).decode()
    proof.write_text("\n".join(lines))
    code, output = verify_proof(proof, "--allow-simulated")
    assert code == 1
    assert "does not list b.txt with that sha256" in output


# --- usage errors ---------------------------------------------------------------------------


def test_usage_errors_exit_2(good_run: Path, tmp_path: Path) -> None:
    unknown = pox("verify", "no-such-run", cwd=good_run)
    assert unknown.returncode == 2
    assert "no run 'no-such-run'" in unknown.stderr
    assert pox("verify", cwd=tmp_path).returncode == 2  # no runs here at all
    missing = pox("prove", "missing.txt", cwd=good_run)
    assert missing.returncode == 2
    assert "missing.txt: no such file" in missing.stderr
    no_proof = pox("verify-proof", str(tmp_path / "missing.proof"), cwd=good_run)
    assert no_proof.returncode == 2
    assert "cannot read proof" in no_proof.stderr
