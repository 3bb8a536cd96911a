"""Built-in data sources (files, SQL, HTTP, PDF, flights) and ``wb.ingest``.

Sources are plugins: :mod:`workbench.sources.builtin` registers the built-in ones through the
``register_sources`` hook, the same way an installed plugin adds its own. The interface is in
:mod:`workbench.sources.base`. This package imports nothing heavy, so loading the plugins
at start-up stays fast.
"""
