"""Sweeps: the summary table of a multirun, and where a sweep's jobs run (threads, GPUs)."""
