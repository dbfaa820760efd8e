"""The embedded executor: documents, validation, scheduling, persistence and reports.

It knows nothing of MCP; secrets reach it only through the resolver interface in
``engine.secrets``.
"""
