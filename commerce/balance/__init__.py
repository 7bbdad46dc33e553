"""Stored balance (储值): top-ups, paying orders from the balance, refunds back to it,
withdrawals, and the double-entry ledger under all of them (`commerce.balance.ledger`).

`balance_of(session, customer_id)` is what an account view shows: the spendable balance,
its bonus part (not withdrawable) and what unpaid orders hold."""

from commerce.balance.ledger import Balances, balance_of

__all__ = ["Balances", "balance_of"]
