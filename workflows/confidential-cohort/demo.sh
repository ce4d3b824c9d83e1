#!/usr/bin/env bash
# `make demo-confidential`: the confidential-cohort workflow end to end, on this machine only.
#   data owner: encrypt the genotypes, push them to the store (and CAR), register them in the
#               DatasetRegistry, grant the key to the sim backend's enclave measurement;
#   requester:  run the workflow with --executor pox; the job attests to the broker, decrypts in
#               its sandbox's private memory, seals the result for the requester's RSA key;
#   then:       push the sealed result, verify the run, unseal the result as the requester.
# Everything lives in a scratch folder (WORK, printed): its own local devnet (anvil), broker and
# store. Set POX_IPFS=http://127.0.0.1:5001 to push to an IPFS node instead of the local store.
# The sim backend's evidence is simulated: the grant allows it explicitly, and it proves nothing
# about confidentiality (see docs/datasets.md).
# POX_DEMO_BACKEND=docker (as root, `make docker` done): the job runs in the pox/python enclave
# image instead, the grant names that image's measurement, and the broker listens on Docker's
# bridge gateway, which job containers reach.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export PATH="$repo/.venv/bin:$PATH"
WORK="${WORK:-$(mktemp -d /tmp/pox-confidential.XXXXXX)}"
backend="${POX_DEMO_BACKEND:-sim}"
broker_host=127.0.0.1 backend_args=(--pox-backend sim)
if [[ "$backend" == docker ]]; then
  broker_host="$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}')"
  backend_args=(--pox-backend docker --pox-default-image pox/python)
elif [[ "$backend" != sim ]]; then
  echo "POX_DEMO_BACKEND: sim or docker, not $backend" >&2
  exit 2
fi
export POX_DATA_DIR="$WORK/pox-data"
echo "== scratch folder: $WORK"
broker_pid=""
cleanup() {
  [[ -n "$broker_pid" ]] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
  pox chain down >/dev/null 2>&1 || true
}
trap cleanup EXIT

owner="$WORK/owner" requester="$WORK/requester" run="$WORK/run"
mkdir -p "$owner" "$requester" "$run"
cp "$here/owner/cohort.vcf" "$owner/"
cp -r "$here/Snakefile" "$here/scripts" "$run/"
mkdir -p "$run/data" "$run/keys"

echo "== requester: an RSA key pair for the result"
python3 - "$requester" <<'PY'
import sys
from pathlib import Path
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
folder = Path(sys.argv[1])
(folder / "requester.pem").write_bytes(key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
(folder / "requester.pub.pem").write_bytes(key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
PY
cp "$requester/requester.pub.pem" "$run/keys/"

echo "== owner: encrypt, push, register"
pox dataset encrypt "$owner/cohort.vcf" --name cohort.vcf
if [[ -n "${POX_IPFS:-}" ]]; then
  pox dataset push "$owner/cohort.vcf.pox-enc.json" --ipfs "$POX_IPFS"
else
  pox dataset push "$owner/cohort.vcf.pox-enc.json" --store "$WORK/store" --car "$owner/cohort.car"
fi
pox dataset register "$owner/cohort.vcf.pox-enc.json" --chain local

echo "== key broker: pox sms serve, reading dataset owners from the devnet"
read -r rpc registry < <(python3 - <<'PY'
import json, os
d = os.path.join(os.environ["POX_DATA_DIR"], "devnet")
node = json.load(open(os.path.join(d, "node.json")))
dep = json.load(open(os.path.join(d, "deployment.json")))
print(node["rpc_url"], dep["addresses"]["DatasetRegistry"])
PY
)
pox sms serve --state-dir "$WORK/sms" --host "$broker_host" --port 0 --ready-file "$WORK/sms.ready" \
  --chain-rpc "$rpc" --dataset-registry "$registry" --quiet >"$WORK/sms.log" 2>&1 &
broker_pid=$!
for _ in $(seq 1 300); do [[ -s "$WORK/sms.ready" ]] && break; sleep 0.1; done
broker="$(cat "$WORK/sms.ready")"
echo "broker at $broker"

echo "== owner: grant the key to the $backend backend's enclave only"
if [[ "$backend" == docker ]]; then
  measurement="$(pox dataset measurement --image pox/python)"
else
  measurement="$(cd "$run" && pox dataset measurement)"
fi
pox dataset grant "$owner/cohort.vcf.pox-enc.json" --broker "$broker" \
  --admin-token-file "$WORK/sms/admin.token" --measurement "$measurement" --allow-simulated

echo "== requester: the run folder gets the ciphertext and manifest only"
cp "$owner/cohort.vcf.pox-enc" "$owner/cohort.vcf.pox-enc.json" "$run/data/"
cat >"$run/config.yaml" <<YAML
broker: "$broker"
dataset: "data/cohort.vcf.pox-enc"
requester_key: "keys/requester.pub.pem"
YAML
(cd "$run" && snakemake --executor pox "${backend_args[@]}" --pox-chain local --cores 2 --quiet rules \
  ${POX_IPFS:+--pox-ipfs "$POX_IPFS"})

echo "== the sealed result: push it, verify the run"
if [[ -n "${POX_IPFS:-}" ]]; then
  pox dataset push "$run/results/allele_freqs.tsv.pox-enc.json" --ipfs "$POX_IPFS"
else
  pox dataset push "$run/results/allele_freqs.tsv.pox-enc.json" --store "$WORK/store" \
    --car "$run/results/allele_freqs.car"
fi
(cd "$run" && pox verify --allow-simulated)
if grep -rq "P001" "$run/results" "$run/.pox" 2>/dev/null; then
  echo "plaintext genotypes found in the run folder" >&2
  exit 1
fi

echo "== requester: unseal the result"
pox dataset unseal "$run/results/allele_freqs.tsv.pox-enc" --identity "$requester/requester.pem" \
  --out "$requester/allele_freqs.tsv"
head -n 5 "$requester/allele_freqs.tsv"
python3 "$here/scripts/allele_freq.py" "$owner/cohort.vcf" | cmp - "$requester/allele_freqs.tsv"
echo "== done: the unsealed result equals the owner's own computation; the run folder held no plaintext"
