"""``python -m multi_task_orchestrator.server.cli``: the ``orchestrator`` command."""

import sys

from multi_task_orchestrator.server.cli import main

sys.exit(main())
