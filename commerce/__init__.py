"""The commerce core: catalog, search, customers, and (later) cart, orders, payments.

Knows nothing about WeChat: it is called by `bot/` and `scheduler/` with plain values.
"""
