"""Where one attempt of a task's runner executes: in-process asyncio (today) or a cluster."""
