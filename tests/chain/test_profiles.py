"""Chain profiles, deployment files, keystores and the missing-anvil message (no node needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pox_executor.chain import localnet
from pox_executor.chain.accounts import AccountError, create_keystore, load_accounts
from pox_executor.chain.devnet import DevnetError
from pox_executor.chain.profiles import CONTRACTS, load_profile, write_deployment
from pox_executor.errors import UsageError


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POX_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("POX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("POX_CHAINS_FILE", raising=False)
    for var in ("POX_KEYSTORE_PASSPHRASE", "POX_REQUESTER_PASSPHRASE"):
        monkeypatch.delenv(var, raising=False)


def test_builtin_profiles() -> None:
    assert load_profile("none") is None
    local = load_profile("local")
    assert local is not None and local.dev_keys and local.chain_id == 8995
    bloxberg = load_profile("bloxberg")
    assert bloxberg is not None and bloxberg.rpc_url == "https://core.bloxberg.org"
    assert bloxberg.explorer_link("ab") == "https://blockexplorer.bloxberg.org/tx/0xab"
    with pytest.raises(UsageError, match="unknown chain profile 'nope'"):
        load_profile("nope")


def test_profiles_file(tmp_path: Path) -> None:
    deployment = tmp_path / "lab.json"
    addresses = {c: "0x" + f"{i:040x}" for i, c in enumerate(CONTRACTS, 1)}
    write_deployment(deployment, 1337, addresses)
    config = tmp_path / "config"
    config.mkdir()
    (config / "chains.toml").write_text(
        f'[chains.lab]\nrpc_url = "http://lab:8545"\nchain_id = 1337\ngas_price_gwei = 2\n'
        f'deployment = "{deployment}"\n'
    )
    lab = load_profile("lab")
    assert lab is not None
    assert (lab.rpc_url, lab.chain_id, lab.gas_price_wei) == ("http://lab:8545", 1337, 2 * 10**9)
    assert lab.load_addresses() == addresses
    assert lab.keystore_dir == config / "keys" / "lab"


def test_keystores_need_the_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = load_profile("bloxberg")
    assert profile is not None and profile.keystore_dir is not None
    for role in ("requester", "scheduler", "worker"):
        create_keystore(profile.keystore_dir / f"{role}.json", "s3cret")
    with pytest.raises(AccountError, match="no passphrase"):
        load_accounts(profile, prompt=False)
    monkeypatch.setenv("POX_KEYSTORE_PASSPHRASE", "wrong")
    with pytest.raises(AccountError, match="wrong passphrase"):
        load_accounts(profile, prompt=False)
    monkeypatch.setenv("POX_KEYSTORE_PASSPHRASE", "s3cret")
    accounts = load_accounts(profile, prompt=False)
    stored = json.loads((profile.keystore_dir / "worker.json").read_text())
    assert accounts.address("worker").lower() == "0x" + stored["address"].lower()
    assert "s3cret" not in repr(accounts) and accounts.key("worker") not in repr(accounts)
    assert accounts.key("worker")[2:] not in capsys.readouterr().out
    assert (profile.keystore_dir / "worker.json").stat().st_mode & 0o077 == 0
    with pytest.raises(AccountError, match="already exists"):
        create_keystore(profile.keystore_dir / "worker.json", "x")


def test_missing_anvil_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POX_ANVIL", str(tmp_path / "no-anvil"))
    with pytest.raises(DevnetError) as err:
        localnet.start()
    text = err.value.diagnostics()
    assert "setup.sh" in text and "--pox-chain none" in text


def test_run_without_anvil_fails_before_any_job(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from poxrun import require_sandbox_tools, snakemake_env

    require_sandbox_tools()
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(
        'rule a:\n    output: "a.txt"\n    shell: "touch {output}"\n'
    )
    env = snakemake_env(workdir, chain="local")
    env.update(POX_ANVIL=str(tmp_path / "no-anvil"), POX_DATA_DIR=os.environ["POX_DATA_DIR"])
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--executor", "pox", "--cores", "1"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "--pox-chain none" in result.stderr + result.stdout
    assert not (workdir / "a.txt").exists()
    assert not (workdir / ".pox" / "runs").exists()
