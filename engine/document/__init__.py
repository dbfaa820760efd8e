"""The orchestration document: ``units`` (durations, rates), ``models`` (the pydantic models),
``loader`` (the hardened YAML/JSON loader) and ``building`` (models from a loaded document, with
positioned issues)."""
