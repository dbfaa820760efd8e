"""The benchmark suite: each workload against a baseline measured in the same run.

Run it with ``python -m bench`` (``--quick`` for a smoke run, ``--only W1,W3`` to pick rows,
``--json PATH`` for where the results go). See ``bench.workloads`` for the workloads.
"""
