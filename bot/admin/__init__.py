"""Staff commands typed in the chat ("/price 12 39.9"): registry, parsing, confirmation, audit.

Each command group is a module (catalog, orders, coupons, stats, staff…) that
registers its commands on the shared registry; `bot/handlers/admin.py` is the entry.
"""
