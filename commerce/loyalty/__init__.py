"""Loyalty: points and badges."""
