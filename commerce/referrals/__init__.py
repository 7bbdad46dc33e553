"""Referrals and the commission they earn."""
