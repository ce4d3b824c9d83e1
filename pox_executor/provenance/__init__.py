"""Provenance: hashing, job statements, DSSE envelopes, the RFC 9162 run log and the run bundle.

Protocol modules (`keys`, `dsse`, `merkle`, `checkpoint`, `tlog_proof`) implement public specs;
`digests`, `statement`, `log` and `bundle` build PoX's records on top of them.
"""
