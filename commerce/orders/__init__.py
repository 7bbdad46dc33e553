"""Orders: placement, the status machine, read models, staff queries, after-sales."""
