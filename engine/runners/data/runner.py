"""The ``data_processing`` runner: it looks the config's action up among the families of
actions and runs it over the task's already-resolved data (see the package's docstring)."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from multi_task_orchestrator.engine.cpu_work import cpu_bound
from multi_task_orchestrator.engine.outputs import looks_large
from multi_task_orchestrator.engine.runners.base import RunContext, Runner
from multi_task_orchestrator.engine.runners.data.aggregate import ACTIONS as AGGREGATE
from multi_task_orchestrator.engine.runners.data.combine import ACTIONS as COMBINE
from multi_task_orchestrator.engine.runners.data.config import DataConfig
from multi_task_orchestrator.engine.runners.data.inputs import ActionFunction, DataInput
from multi_task_orchestrator.engine.runners.data.reshape import ACTIONS as RESHAPE

_ACTIONS: dict[str, ActionFunction] = {**COMBINE, **RESHAPE, **AGGREGATE}


class DataProcessingRunner(Runner[DataConfig]):
    """Runs one data action over already-resolved inputs; see the package's docstring."""

    type_name: ClassVar[str] = "data_processing"
    aliases: ClassVar[tuple[str, ...]] = ("data",)
    listing_rank: ClassVar[int] = 30
    config_model: ClassVar[type[DataConfig]] = DataConfig
    summary: ClassVar[str] = (
        "Reshapes task outputs without code: merge, filter, map, select, dedupe, sort, "
        "group_by, join, aggregate, flatten or pick, with JMESPath for predicates and keys."
    )
    example: ClassVar[dict[str, Any]] = {
        "id": "merge_content",
        "type": "data_processing",
        "config": {
            "action": "merge",
            "inputs": ["${extract_site_a.output}", "${extract_site_b.output}"],
        },
        "dependencies": ["extract_site_a", "extract_site_b"],
    }

    async def run(self, config: DataConfig, ctx: RunContext) -> Any:
        action = functools.partial(_ACTIONS[config.action], config, DataInput(config))
        data = config.inputs if config.inputs is not None else config.input
        # a large input is worked on off the event loop, which keeps answering meanwhile
        result, line = await cpu_bound(action) if looks_large(data) else action()
        ctx.log(line)
        return result
