"""Auditor tools over run bundles: verify a run, prove where a file came from, show a run.

Everything here reads bundles and never writes into them; the CLI is a thin layer over these
functions.
"""
