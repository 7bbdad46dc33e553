"""Members: a phone confirmed with a one-time SMS code, and levels by total spent (issue 17)."""
