"""Operations: health checks, metrics, backups and logging."""
