"""Customers, their addresses and hand-overs to a human."""
