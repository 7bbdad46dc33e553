"""Messages to customers: the outbox, notifications, broadcasts and queued notices."""
