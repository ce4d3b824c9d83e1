"""Enclave runtimes (where a job runs) and the TEE evidence they produce.

`runtime` defines the interface every backend implements; `sim` is the default bubblewrap backend,
built on `isolation` (what a job sees), `commit` (which writes are kept) and `jobenv` (which
environment variables it receives); `evidence` the evidence envelope and report-data binding
shared by producers and verifiers.
"""
