"""Bad input to a running broker: RFC 7807 errors with 4xx statuses, never a 500 or a traceback.

Also the admin API's bearer token, secrets sealed at rest and surviving a restart, and the
master key's file mode.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from broker_process import BrokerProcess, http, problem_of

from pox_executor.cli import main
from pox_executor.enclave.producers import SimProducer
from pox_executor.sms import admin, client
from pox_executor.sms.client import BrokerRefused

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def broker(module_broker: BrokerProcess) -> BrokerProcess:
    return module_broker


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    [
        ("POST", "/kbs/v0/auth", b"{not json", JSON, 400),
        ("POST", "/kbs/v0/auth", b"\xff\xfe", JSON, 400),
        ("POST", "/kbs/v0/auth", b"[" * 200_000 + b"]" * 200_000, JSON, 400),
        ("POST", "/kbs/v0/auth", b'{"version": "0.4.0", "tee": "sample"}', {}, 415),
        ("POST", "/kbs/v0/auth", b"version=0.4.0", {"Content-Type": "text/plain"}, 415),
        ("POST", "/kbs/v0/auth", b"[]", JSON, 401),
        ("POST", "/kbs/v0/auth", b'{"version": "0.1.1", "tee": "sample"}', JSON, 401),
        ("POST", "/kbs/v0/auth", b'{"version": "0.4.0", "tee": "nope"}', JSON, 401),
        ("POST", "/kbs/v0/auth", b'{"version": 4, "tee": "sample"}', JSON, 401),
        ("POST", "/kbs/v0/auth", b" " * (5 << 20), JSON, 413),
        ("GET", "/kbs/v0/auth", None, {}, 405),
        ("POST", "/kbs/v0/attest", b"{}", JSON, 401),
        ("GET", "/kbs/v0/resource/a/b/c", None, {}, 401),
        ("GET", "/kbs/v0/resource/a/b/c", None, {"Cookie": "kbs-session-id=forged"}, 401),
        ("GET", "/kbs/v0/nothing", None, {}, 404),
        ("PUT", "/pox/v0/policies/p", b"{}", JSON, 401),
        ("PUT", "/pox/v0/secrets/a/b/c", b'{"value": "aGk="}', JSON, 401),
        ("PUT", "/pox/v0/secrets/a/b/c", b'{"value": 5}', JSON, 400),
        ("POST", "/pox/v0/challenges", b"{}", JSON, 401),
    ],
)
def test_bad_requests_get_problem_documents(
    broker: BrokerProcess,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    status: int,
) -> None:
    got, reply_headers, reply = http(method, broker.url + path, body, headers=headers)
    assert got == status, reply
    assert reply_headers["Content-Type"].startswith("application/problem+json")
    document = problem_of(reply)
    assert document["status"] == status and document["detail"]
    assert "Traceback" not in broker.log()


def test_malformed_attestations_after_a_real_auth(broker: BrokerProcess) -> None:
    from kbs_steps import RawSession

    cases: list[object] = [
        [],
        {"runtime-data": "x"},
        {"runtime-data": {"nonce": 5}},
        {"runtime-data": {"nonce": None, "tee-pubkey": {}}},
    ]
    for payload in cases:
        session = RawSession(broker.url)
        status, body = session.attest(payload)
        assert status == 401, body
    session = RawSession(broker.url)
    bad_key = {"runtime-data": {"nonce": session.nonce, "tee-pubkey": {"kty": "EC"}}}
    assert session.attest(bad_key)[0] == 401
    session = RawSession(broker.url)
    runtime = session.runtime_data()
    for evidence in (
        {"type": "sim-report", "value": "!!"},
        {"type": "sgx-dcap-quote", "value": "AAAA"},
        {"type": "nope"},
        "string",
    ):
        session = RawSession(broker.url)
        runtime = session.runtime_data()
        status, body = session.attest(
            {"runtime-data": runtime, "tee-evidence": {"primary_evidence": evidence}}
        )
        assert status == 401, body
    # a deeply nested tee-pubkey cannot be canonicalised, and says so
    session = RawSession(broker.url)
    deep = "[" * 5000 + "1" + "]" * 5000
    raw = (
        f'{{"runtime-data": {{"nonce": "{session.nonce}", "tee-pubkey": {deep}}}, '
        '"tee-evidence": {"primary_evidence": {}}}'
    )
    status, body = session.attest(None, raw=raw.encode())
    assert status in (400, 401), body
    assert "Traceback" not in broker.log()


def test_admin_api_needs_the_bearer_token(broker: BrokerProcess) -> None:
    with pytest.raises(BrokerRefused) as caught:
        admin.put_policy(broker.url, "wrong-token", "p", {"resources": ["a/b/c"]})
    assert caught.value.status == 401
    with pytest.raises(BrokerRefused) as caught:
        admin.put_policy(broker.url, broker.token, "p", {"resources": ["a/b/c"], "allow_sim": 1})
    assert caught.value.status == 400 and "allow_sim" in caught.value.detail
    with pytest.raises(BrokerRefused) as caught:
        admin.put_policy(
            broker.url,
            broker.token,
            "p",
            {"resources": ["a/b/c"], "attestation": {"measurements": {"sim-report": [{}]}}},
        )
    assert caught.value.status == 400 and "measurements.sim-report[0]" in caught.value.detail
    assert admin.put_policy(broker.url, broker.token, "p", {"resources": ["a/b/c"]})
    assert "p" in admin.list_policies(broker.url, broker.token)


def test_secrets_sealed_at_rest_and_survive_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    process = BrokerProcess(state)
    process.start()
    try:
        secret = b"plaintext-that-must-not-leak-0123456789"
        admin.put_policy(
            process.url,
            process.token,
            "p",
            {
                "resources": ["vault/key/*"],
                "allow_simulated": True,
                "attestation": {"allow_debug": True},
            },
        )
        admin.put_secret(process.url, "vault/key/a", secret, token=process.token)
        mode = stat.S_IMODE(os.stat(state / "master.key").st_mode)
        assert mode == 0o600
        for path in state.rglob("*"):
            if path.is_file():
                assert secret not in path.read_bytes(), path
        with pytest.raises(BrokerRefused) as caught:  # no silent overwrite of user data
            admin.put_secret(process.url, "vault/key/a", b"other", token=process.token)
        assert caught.value.status == 409
        process.restart()
        assert (
            client.fetch_resource(process.url, "vault/key/a", producer=SimProducer("i")) == secret
        )
        assert secret.decode() not in process.log()
    finally:
        process.stop()
    # a master key others can read is refused at start, with the fix named
    os.chmod(state / "master.key", 0o644)
    with pytest.raises(RuntimeError, match="chmod 600"):
        process.start()


def test_fetch_cli_writes_plaintext_0600_and_labels_simulation(
    broker: BrokerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    admin.put_policy(
        broker.url,
        broker.token,
        "cli",
        {"resources": ["cli/key/*"], "allow_simulated": True, "attestation": {"allow_debug": True}},
    )
    admin.put_secret(broker.url, "cli/key/a", b"cli secret", token=broker.token)
    out = tmp_path / "key.bin"
    fetch = ["sms", "fetch", broker.url, "cli/key/a", "--producer", "sim"]
    assert main([*fetch, "--out", str(out)]) == 0
    assert "SIMULATED" in capsys.readouterr().err
    assert out.read_bytes() == b"cli secret"
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert main([*fetch, "--out", str(out)]) == 2
    assert "not overwriting" in capsys.readouterr().err
    assert main(["sms", "fetch", broker.url, "cli/key/b", "--producer", "sim"]) == 1
    assert "404" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["serve", "--state-dir", "/proc/no-such-dir", "--port", "0"], 1, "state directory"),
        (["serve", "--state-dir", "x", "--port", "99999"], 2, "not a port number"),
        (["serve", "--state-dir", "x", "--chain-rpc", "http://h"], 2, "go together"),
        (["fetch", "http://127.0.0.1:1", "a/b", "--producer", "sim"], 2, "resource path"),
        (["fetch", "ftp://x", "a/b/c", "--producer", "sim"], 1, "broker URL"),
    ],
)
def test_cli_errors_are_clear(
    args: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        got = main(["sms", *args])
    except SystemExit as exc:  # argparse's own usage errors
        got = int(exc.code or 0)
    assert got == code
    assert message in capsys.readouterr().err


def test_deeply_nested_policy_values_are_a_400(broker: BrokerProcess) -> None:
    depth = 900
    deep = "[" * depth + "]" * depth
    for document in (
        f'{{"resources": ["a/b/c"], "attestation": {{"allow_debug": {deep}}}}}',
        f'{{"resources": {deep}}}',
        f'{{"resources": ["a/b/c"], "description": {deep}}}',
    ):
        status, _h, body = http(
            "PUT",
            f"{broker.url}/pox/v0/policies/deep",
            document.encode(),
            headers={**JSON, "Authorization": f"Bearer {broker.token}"},
        )
        assert status == 400, body
    assert "Traceback" not in broker.log()
