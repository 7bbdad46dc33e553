"""The scheduler's tests drive jobs against the real app (fixtures shared with tests/bot)."""

from tests.bot.conftest import make_shop  # noqa: F401
