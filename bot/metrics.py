"""Prometheus metrics of the webhook, in a registry of the app's own (no globals)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        object.__setattr__(self, "messages", Counter(
            "storefront_messages", "Authenticated WeChat messages by type", ["kind", "event"], registry=r))
        object.__setattr__(self, "rejected", Counter(
            "storefront_rejected_requests", "Webhook requests refused", ["reason"], registry=r))
        object.__setattr__(self, "deferred", Counter(
            "storefront_deferred_replies", "Replies that missed the deadline or answered a retry later",
            registry=r))
        object.__setattr__(self, "rate_limited", Counter(
            "storefront_rate_limited_messages",
            "Messages refused by the per-user rate limit (warn: answered politely, silence: not)",
            ["verdict"], registry=r))
        object.__setattr__(self, "latency", Histogram(
            "storefront_webhook_seconds", "Webhook POST handling time", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 4.5)))
