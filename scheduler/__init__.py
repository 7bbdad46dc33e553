"""APScheduler jobs: thin, idempotent calls into the commerce core (added with orders)."""
