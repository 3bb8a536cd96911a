"""Notebook runs: typed parameters, execution on warm kernels, run records and results.

The public functions live in :mod:`workbench.runs.api` and are exported lazily from
``workbench`` (``wb.run``, ``wb.record``, ``wb.results``, ...).
"""
