"""One ADBC backend per database: SQLite, PostgreSQL, and governed team-mode writes."""
