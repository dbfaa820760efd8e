"""Multi-Task Orchestrator: an MCP server and CLI that runs DAGs of tasks in parallel, durably,
with an encrypted credential vault.

The distribution installs ONE import package, ``multi_task_orchestrator``. Its subpackages are
the repository's top-level folders, mapped in by ``package-dir`` in ``pyproject.toml``:
``engine`` (the embedded executor), ``vault`` (encrypted credentials), ``tools`` (the MCP
tools) and ``server`` (the MCP server, settings and the ``orchestrator`` CLI).
"""
