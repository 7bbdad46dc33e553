"""APScheduler jobs: thin, idempotent calls into the commerce core (see jobs.py)."""
