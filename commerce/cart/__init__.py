"""The cart and its pricing."""
