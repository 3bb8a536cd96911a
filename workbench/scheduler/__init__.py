"""Cron schedules turned into queued runs, and the executors that run them."""
