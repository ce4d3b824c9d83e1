"""Enclave runtimes (where a job runs), the images they run in, and the TEE evidence they produce.

Modules:

- `runtime`: the protocol every backend implements (`EnclaveRuntime`, `JobSpec`, `RunOutcome`:
  what ran each attempt, the identity included, travels back in the outcome);
- `backends`: the registry mapping `--pox-backend` names to runtimes;
- `sim`: the default backend, bubblewrap isolation plus simulated evidence;
- `docker`: one container per job in a measured enclave image;
- `jobprocess`: what the backends share (job processes, registration and cancellation, stage
  root, the report of discarded writes, the measurement document);
- `isolation`: what a job sees (the allowlisted bubblewrap view, the private overlays of the
  working directory and of outside output directories);
- `commit`: which of a job's writes are kept (declared outputs) and which are discarded;
- `jobenv`: which host environment variables a job receives (secrets dropped);
- `engine`: the Docker Engine API (docker SDK), for the docker backend and the image builder;
- `images/`: offline reproducible builds of the `pox/<name>` images (recipes, archive state,
  cache, wheels, root filesystem, deterministic tar, build and listing);
- `environment`: the software environment a sim job sees, and its digest;
- `evidence`: the evidence envelope, the report-data binding and the `sim-report` format;
- `producers/`: evidence from the TEE this process runs in (Gramine SGX, configfs-tsm TDX/SNP,
  sim);
- `verifiers/`: verification of evidence against an attestation policy.
"""
