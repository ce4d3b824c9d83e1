"""The key broker (SMS): releases secrets and per-task enclave challenge keys to attested jobs only.

This package owns PoX's secret management service and its guest client. The wire protocol is the
Trustee KBS attestation protocol 0.4.0 (`protocol`, `jwe`), so unmodified Confidential Containers
guests can use it; iExec's SMS semantics sit on top (per-task secp256k1 enclave challenge keys tied
to the deal deadline, secret uploads signed by the on-chain owner). Modules: `protocol` (names and
runtime-data binding), `jwe` (flattened JWE both ways), `client` (what jobs call), `policy`
(resource policies), `store` (secrets encrypted at rest), `challenges` (enclave challenge keys),
`uploads` (EIP-191 upload authorisation), `broker` (sessions and shared HTTP helpers), `kbs_api`
and `pox_api` (the endpoints), `server` (the aiohttp application behind `pox sms serve`), `admin`
(host-side calls to the PoX API), `scheduler` (broker-held challenges for `--pox-sms`).
Evidence is verified by `pox_executor.enclave.verifiers`, never here.
"""

from __future__ import annotations
