"""The data API: DataFrames in and out of the governed database as Arrow through ADBC.

``data.api`` holds the functions ``wb.sql``, ``wb.write`` and the rest bind; ``catalog``,
``cache``, ``arrow`` and ``write`` are their parts; ``backends/`` talks to each database.
"""
