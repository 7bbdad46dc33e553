"""Stored balance (储值): top-ups, paying orders from the balance, refunds back to it,
withdrawals, and the double-entry ledger under all of them (`commerce.balance.ledger`)."""
