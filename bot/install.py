"""Fill in the secrets the configuration leaves empty with the install's own (see
`commerce.install_secrets`), so that no shop ever runs on a key printed in our source."""

from __future__ import annotations

from bot.config import Config
from commerce.install_secrets import install_secret
from commerce.uow import UnitOfWorkFactory


async def resolve_install_secrets(config: Config, uows: UnitOfWorkFactory) -> Config:
    """`config` with `server.secret_key` and `pay.sandbox_secret` set: configured, or the install's."""
    if config.server.secret_key and (config.pay.sandbox_secret or config.pay.provider != "sandbox"):
        return config
    async with uows() as uow:
        session = uow.session
        link_key = config.server.secret_key or await install_secret(session, name="link_key")
        sandbox = config.pay.sandbox_secret
        if not sandbox and config.pay.provider == "sandbox":
            sandbox = await install_secret(session, name="sandbox_notify")
    return config.replace(server={"secret_key": link_key}, pay={"sandbox_secret": sandbox})
