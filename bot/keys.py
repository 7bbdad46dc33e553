"""Typed application keys: the app's state, built by the factory (no module globals)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.chat.render import Renderer
from bot.config import Config
from bot.metrics import Metrics
from bot.outbound.delivery import Delivery
from bot.outbound.notifier import OutboundNotifier
from bot.outbound.sender import OutboundSender
from bot.services import Services
from bot.wechat.inbox import Inbox
from bot.wechat.replay import ReplayCache
from commerce.payments.service import PaymentService
from scheduler.jobs import JobContext

CONFIG = web.AppKey("config", Config)
ENGINE = web.AppKey("engine", AsyncEngine)
SERVICES = web.AppKey("services", Services)
RENDERER = web.AppKey("renderer", Renderer)
INBOX = web.AppKey("inbox", Inbox)
OUTBOUND = web.AppKey("outbound", OutboundSender)
METRICS = web.AppKey("metrics", Metrics)
NOTIFIER = web.AppKey("notifier", OutboundNotifier)
JOBS = web.AppKey("jobs", JobContext)
PAYMENTS = web.AppKey("payments", PaymentService)  # bot/payments.py builds it
REPLAY = web.AppKey("replay", ReplayCache)  # the webhook's replay cache (bot/replay.py)
DELIVERY = web.AppKey("delivery", Delivery)  # sends what units of work committed to the outbox
