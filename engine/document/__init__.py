"""The orchestration document: ``units`` (durations, rates), ``models`` (the pydantic models),
``loader`` (the hardened YAML/JSON loader: ``yaml_events`` reads the usual document straight
from libyaml's events, ``hardened_yaml`` the rest; ``raw`` finds positions when asked),
``building`` (models from a loaded document, with positioned issues), ``validation`` (every
problem in one pass: ``checks``, ``references``, ``runner_configs`` over what ``examined``
gathers), ``plan`` (stages, critical path) and ``schema`` (the JSON Schema for editors)."""
