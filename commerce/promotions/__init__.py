"""Promotions: coupons."""
