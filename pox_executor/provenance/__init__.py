"""Provenance: hashing, job statements, DSSE envelopes, the RFC 9162 run log and the run bundle.

Protocol modules (`keys`, `dsse`, `merkle`, `checkpoint`, `tlog_proof`) implement public specs;
`digests`, `names`, `statement`, `log`, `bundle` and `recorder` build PoX's records on top of
them, and `records` is the one reader of a log line (session opening, job record, closing).
"""
