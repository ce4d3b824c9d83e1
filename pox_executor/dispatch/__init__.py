"""Dispatch: running a run's jobs on the nodes of a cluster engine (SLURM, Kubernetes)."""
