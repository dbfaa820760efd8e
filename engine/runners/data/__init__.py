"""The ``data_processing`` task type: reshape task outputs without writing code.

One config chooses an ``action`` and gives the data through ``input`` (one value) or ``inputs``
(several values). Predicates, keys and fields are JMESPath expressions (https://jmespath.org),
evaluated per item; their syntax is checked when the document is validated.

Actions:

- ``merge`` — lists are concatenated in order. Objects are merged key by key, and nothing is
  dropped: a key in one input is kept; objects under one key merge the same way; lists under one
  key are concatenated; a value the inputs agree on is kept once. A key whose inputs hold
  different values is a conflict, settled by ``on_conflict``: ``collect`` (the default) keeps
  every value, in input order, in a list; ``error`` fails the task naming the key and the
  inputs; ``first`` or ``last`` keep one input's value, lists included (the log names the keys
  whose other values were dropped). So merging two browser extractions (``{url, title, data,
  artifacts}`` each) gives ``data`` holding both sites' items, and ``url`` and ``title`` both
  pages'. Null inputs are skipped; mixing lists and objects, or any other value, is an error.
- ``filter`` — keeps the items for which ``where`` is true in JMESPath's sense (null, false and
  empty strings, lists and objects are false; every number, 0 included, is true).
- ``map`` — ``expression``: the expression's value for each item; or ``fields``: an object per
  item, exactly as ``select`` builds it.
- ``select`` — ``fields``: an object per item. A list of expressions uses each expression as
  written as its key (``[name, price]`` -> ``{"name": ..., "price": ...}``; a quoted name such as
  ``'"first-name"'`` keys as ``first-name``); a mapping names them (``{title: name}``).
- ``dedupe`` — keeps the first item for each value of ``key`` (the whole item without a key;
  items where the key is null count as one value).
- ``sort`` — by ``key`` (the item itself without one), ``order: asc | desc``. Items whose key is
  null come last in either order, ties keep their order. The keys must be all numbers, all
  strings (ordered by code point: ``B`` before ``a``) or all booleans; others (a number and a
  string, an object) fail the task naming two of them. ``min`` and ``max`` of ``aggregate``
  take the same values.
- ``group_by`` — ``{"<key as text>": [items...]}`` in first-seen order; a string key is used as
  is, any other key as its compact JSON (``1``, ``true``, ``null``).
- ``join`` — ``inputs: [left, right]`` (lists of objects), matched on ``on`` or on
  ``left_on`` / ``right_on``; ``how: inner | left``. A row is the left object updated with the
  right one, except that a plain-field left key keeps the left value. Each matching right item
  gives its own row; null keys never match.
- ``aggregate`` — ``ops: {name: "count" | "count:f" | "sum:f" | "avg:f" | "min:f" | "max:f"}``
  where ``f`` is JMESPath and null values are left out. Without ``group_by``: one object of
  results. With ``group_by`` (an expression or a list of them): one object per group, in
  first-seen order, holding the group's key values (named by the expressions as written) and
  the results. ``avg``, ``min`` and ``max`` of nothing are null; ``sum`` of nothing is 0.
- ``flatten`` — flattens nested lists ``depth`` levels deep (default 1).
- ``pick`` — ``fields`` (as in ``select``) from an object or from each item of a list; or
  ``path``: the value of one JMESPath expression over the whole input.

Every action but ``merge``, ``join`` and ``pick`` needs a list. Given ``inputs`` (several
lists), every action but ``merge`` and ``join`` concatenates them first, skipping nulls.

The modules: ``config`` (the config model and its checks), ``expression`` (compiled JMESPath),
``values`` (comparing, ordering and describing JSON values), ``inputs`` (the data an action is
given), the actions by family — ``combine`` (merge, join), ``reshape`` (filter, map, select,
dedupe, sort, group_by, flatten, pick), ``aggregate`` — with ``object_merge`` (how objects
merge), and ``runner`` (the runner, which looks the action up).
"""

from multi_task_orchestrator.engine.runners.data.config import DataConfig
from multi_task_orchestrator.engine.runners.data.runner import DataProcessingRunner

RUNNER = DataProcessingRunner

__all__ = ["RUNNER", "DataConfig", "DataProcessingRunner"]
