"""`pox dataset` from the command line: clear errors and exit codes, nothing overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pox_executor.cli import main


def test_encrypt_writes_three_files_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "g.vcf"
    source.write_text("chr1\t1\t0/1\n")
    assert main(["dataset", "encrypt", str(source)]) == 0
    ciphertext = tmp_path / "g.vcf.pox-enc"
    manifest = json.loads((tmp_path / "g.vcf.pox-enc.json").read_text())
    key = tmp_path / "g.vcf.pox-enc.key"
    assert manifest["checksum"] in capsys.readouterr().out
    before = (ciphertext.read_bytes(), key.read_bytes())
    assert main(["dataset", "encrypt", str(source)]) == 2
    assert "already exists; PoX never overwrites it" in capsys.readouterr().err
    assert (ciphertext.read_bytes(), key.read_bytes()) == before
    assert b"0/1" not in ciphertext.read_bytes()


def test_cid_command_prints_the_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "hello"
    path.write_bytes(b"hello world")
    assert main(["dataset", "cid", str(path), "--cid-profile", "unixfs-v0-2015"]) == 0
    assert capsys.readouterr().out.startswith("Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD")
    assert main(["dataset", "cid", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_bad_manifest_is_a_usage_error_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "x.pox-enc.json"
    bad.write_text(
        json.dumps(
            {
                "version": 1,
                "name": "x",
                "format": "f",
                "ciphertext": "x",
                "size": 1,
                "checksum": "0xnothex",
            }
        )
    )
    assert main(["dataset", "push", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "field 'checksum'" in err and "Traceback" not in err
    assert main(["dataset", "register", str(tmp_path / "none.json"), "--chain", "none"]) == 2
    assert "no dataset manifest" in capsys.readouterr().err


def test_grant_needs_a_measurement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pox_executor.datasets.grant import parse_measurement
    from pox_executor.errors import UsageError

    assert parse_measurement("sgx-dcap-quote=" + "aa" * 32) == (
        "sgx-dcap-quote",
        {"mrenclave": "aa" * 32},
    )
    with pytest.raises(UsageError, match="TYPE=VALUE"):
        parse_measurement("sha256:abc")
