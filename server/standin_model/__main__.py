"""``python -m multi_task_orchestrator.server.standin_model [PORT]``: the stand-in in the
foreground."""

import sys

from multi_task_orchestrator.server.standin_model.serving import main

main(sys.argv[1:])
