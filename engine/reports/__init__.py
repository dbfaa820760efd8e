"""What a run looks like, to people and to programs. It reads the engine's state; the running
of a run never imports it (its files are written by ``run_end.write_files_on_run_end``, a
listener on the run's end).

- ``display``: the seed's live status display (progress bar, counts, task tree)
- ``summary``: the seed's summary report
- ``results``: ``aggregated_results.json``; ``log``: ``execution_log.txt``
- ``files``: the run's files: their names, finding them, writing them atomically
- ``run_end``: the listener that writes them as a run ends
- ``timeline``: the timeline's layout, from ``spans`` (a task's bars, the ran/waited band) and
  ``critical_path``; ``svg``: drawing it; ``png``: rasterising it
- ``html``: ``report.html``
- ``text``: durations, times and free text as the reports write them
"""
