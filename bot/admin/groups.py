"""Importing this module registers every command group on the shared registry."""

from bot.admin import general, staff_commands  # noqa: F401
