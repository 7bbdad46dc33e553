"""The WeChat edge: aiohttp app, webhook, routing, dialogs and the outbound side."""
