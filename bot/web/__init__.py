"""HTTP pages: product, payment, group, referral, export, health, ops (/metrics); the links they are reached by."""
