"""The ``${...}`` reference language of orchestration documents.

A reference names where a value comes from and, after that name, a JMESPath expression:

- ``${task_id.output.items[0]}`` — the JMESPath ``output.items[0]`` over the finished task's
  ``{"output": ..., "state": ..., "error": ...}``; ``${task_id}`` alone is its output;
- ``${vars.base}``, ``${item.name}``, ``${index}`` — the document's vars, and the current item and
  its position inside a ``for_each`` task;
- ``${vault.NAME}`` — a secret. It is never resolved here: it stays in the text until a runner
  reveals it, naming the host it will send it to (``reveal_secrets``);
- a whole-scope expression, when the text starts with a JMESPath function call, ``[`` or ``{``
  (or anything else that is not a name): ``${length(a.output)}``,
  ``${merge(a.output, b.output)}``, ``${not_null(vars.title, item.title)}``. It is evaluated
  against ``{task_id: {"output", "state", "error"}, "vars": ..., "item": ..., "index": ...}``, so
  task ids with dashes are quoted (``"site-a".output``) and a task is read through ``.output``,
  ``.state`` or ``.error``. Such a reference is reported as one ``Reference`` per name it reads
  (``expression=True``, all with the same ``text``), so a validator checks each name.

A string that is exactly one reference keeps the value's type; a reference inside a longer string
is interpolated. ``$${`` writes a literal ``${``. In the seed's plain form, a string such as
``"extract_site_a.output"`` directly under an ``inputs:`` or ``input:`` key is a reference as if it
were written ``${extract_site_a.output}``.

There is no ``eval`` and no attribute access anywhere: names index mappings and the rest is
JMESPath. Every problem is an ``ExpressionError`` naming the reference and what to do about it.

One job per module: the values (``model``), JMESPath's syntax tree (``tree``), compiling and
checking an expression (``compiling``), parsing a reference (``parsing``), scanning a string for
references (``scanning``), finding them in a document (``finding``), resolving them
(``resolving``) and revealing secrets (``revealing``).
"""

from multi_task_orchestrator.engine.expressions.finding import (
    find_references,
    holds_escape,
    secret_names,
    task_roots,
)
from multi_task_orchestrator.engine.expressions.model import (
    INPUT_KEYS,
    TASK_FIELDS,
    ExpressionError,
    Location,
    Reference,
    ReferenceKind,
    Scope,
    Step,
)
from multi_task_orchestrator.engine.expressions.parsing import (
    MAX_EXPRESSION_LENGTH,
    parse_reference,
)
from multi_task_orchestrator.engine.expressions.resolving import _follow, resolve
from multi_task_orchestrator.engine.expressions.revealing import reveal_secrets

__all__ = [
    "INPUT_KEYS",
    "MAX_EXPRESSION_LENGTH",
    "TASK_FIELDS",
    "ExpressionError",
    "Location",
    "Reference",
    "ReferenceKind",
    "Scope",
    "Step",
    "_follow",
    "find_references",
    "holds_escape",
    "parse_reference",
    "resolve",
    "reveal_secrets",
    "secret_names",
    "task_roots",
]
