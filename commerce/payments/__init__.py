"""Payments behind one provider interface: WeChat Pay v3 (primary), v2 (legacy), sandbox.

`base` holds the interface and its values, one module per provider, and `service`
the use cases (pay, take a notification, refund, close) around `commerce.orders.placement`.
"""

from commerce.payments.base import (
    Notification,
    NotificationRejected,
    PaymentError,
    PaymentProvider,
    PaymentRequest,
)

__all__ = ["Notification", "NotificationRejected", "PaymentError", "PaymentProvider", "PaymentRequest"]
