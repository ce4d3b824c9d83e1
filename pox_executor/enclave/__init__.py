"""Enclave runtimes (where a job runs) and the TEE evidence they produce.

`runtime` defines the interface every backend implements; `sim` is the default bubblewrap backend;
`evidence` the evidence envelope and report-data binding shared by producers and verifiers.
"""
