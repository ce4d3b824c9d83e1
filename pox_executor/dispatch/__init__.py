"""Dispatch: running a run's jobs on the nodes of a cluster engine instead of in this process.

PoX does not schedule. A dispatcher hands each job to the engine (SLURM now); on the node,
`pox jobstep` runs the job in the configured enclave backend, hashes, attests and signs its
statement there (`node`); the head only collects signed statements, checks them and appends them
to the run's log (`collector`). `protocol` is the data both sides exchange: the job ticket the head
writes and the submission the node sends back (over HTTP, and through a spool directory on the
shared filesystem as the fallback that survives a head or network outage).
"""
