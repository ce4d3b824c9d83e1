"""`pox verify` catches tampering with a run bundle, and says what broke.

One good run of a three-job workflow is made by real Snakemake for the module: its copy verifies,
and a forged record fails with the check named (the full corpus of attacks, on runs recorded
in-process, is `test_tamper_corpus.py`). Then the simulated-evidence policy, `pox prove` /
`pox verify-proof` with their own tamper cases, and usage errors (exit 2).
"""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from poxrun import ATTESTATIONS, only_bundle, pox, run_snakemake

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
            build = statement["predicate"].get("buildDefinition", {})
            if build.get("externalParameters", {}).get("rule") == rule:
                return index
        raise AssertionError(f"no record of rule {rule}")

    def verify(self, *args: str) -> tuple[int, str]:
        result = pox("verify", "--allow-simulated", "--offline", *args, cwd=self.workdir)
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


def other_root(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_the_untouched_copy_verifies(copy: Copy) -> None:
    code, output = copy.verify()
    assert code == 0, output
    assert "status=succeeded" in output


def test_a_forged_record_fails_and_the_json_report_names_the_check(copy: Copy) -> None:
    lines = copy.lines()
    index = copy.line_of("b")
    statement = json.loads(base64.b64decode(json.loads(lines[index])["payload"]))
    payload = json.dumps(statement).encode()
    lines[index] = serialize_envelope(sign_envelope(payload, SigningKey.generate()))
    copy.write_lines(lines)
    code, output = copy.verify("--json")
    assert code == 1
    report = json.loads(output)
    assert report["ok"] is False
    assert {"signer", "merkle-root"} <= {
        f["check"] for f in report["findings"] if f["level"] == "error"
    }


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
