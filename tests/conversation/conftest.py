"""The corpus runs against the same demo shop the chat tests use."""

from tests.bot.conftest import make_shop  # noqa: F401  (the fixture, shared)
