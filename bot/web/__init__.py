"""HTTP pages: product, payment, group, referral, export, health; the links they are reached by."""
