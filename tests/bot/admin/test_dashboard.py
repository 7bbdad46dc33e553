"""/dashboard and /stats in chat give staff a link to the dashboard page; strangers and
service staff get none; the page refuses links that are cut, altered, of another kind,
expired or no longer a manager's; through the real app."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.keys import CONFIG
from bot.web.dashboard import make_dashboard_token, read_dashboard_token
from bot.web.export import make_export_token
from bot.web.signed_links import LinkError
from tests.bot.admin.test_stats import _audit, place
from tests.bot.conftest import OPERATOR, OWNER, SERVICE, STRANGER
from tests.bot.driver import Shop

LINK = re.compile(r"https://shop\.example\.com(/dashboard/[A-Za-z0-9_-]+)")
DATA = re.compile(r'<script type="application/json" id="dashboard-data">(.*?)</script>', re.S)


async def _link(shop: Shop, openid: str, command: str) -> str:
    reply = await shop.user(openid).say(command)
    match = LINK.search(reply.text)
    assert match is not None, reply.text
    return match.group(1)


@pytest.mark.sqlite_only
async def test_staff_get_a_link_to_the_charts_of_today(staffed: Shop) -> None:
    await place(staffed, "o_buyer_1", "FRU-BANANA-3J", 2)  # ¥25.80 + ¥8.00 delivery, paid now
    reply = await staffed.user(OPERATOR).say("/dashboard")
    assert "数据看板" in reply.text and "转化漏斗" in reply.text and "请勿转发" in reply.text
    path = LINK.search(reply.text).group(1)  # type: ignore[union-attr]
    response = await staffed.client.get(path + "?days=7")
    assert response.status == 200
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    html = await response.text()
    assert '<script src="/static/vendor/echarts/echarts.min.js"></script>' in html
    assert "cdn" not in html.lower() and "<script>" not in html  # no inline script, nothing from elsewhere
    data = json.loads(DATA.search(html).group(1))  # type: ignore[union-attr]
    assert len(data["current"]["days"]) == 7 and data["current"]["totals"]["revenue_fen"] == 3380
    assert data["current"]["products"] == [{"name": "香蕉", "units": 2, "revenue_fen": 2580}]
    assert data["previous"]["totals"]["revenue_fen"] == 0

    entries = [e for e in await _audit(staffed) if e.command == "dashboard"]
    assert [(e.actor, e.outcome) for e in entries] == [(OPERATOR, "ok")]
    assert "url" not in json.dumps(entries[0].after)  # the link is a key: not in the audit log


@pytest.mark.sqlite_only
async def test_stats_keeps_its_text_and_links_the_dashboard(staffed: Shop) -> None:
    reply = await staffed.user(OWNER).say("/stats")
    assert "【今日】" in reply.text and "【近 7 天】" in reply.text and "【图表】数据看板" in reply.text
    path = LINK.search(reply.text).group(1)  # type: ignore[union-attr]
    assert (await staffed.client.get(path)).status == 200


@pytest.mark.sqlite_only
async def test_strangers_and_service_staff_get_no_link(staffed: Shop) -> None:
    assert "您的角色不能使用 /dashboard" in (await staffed.user(SERVICE).say("/dashboard")).text
    stranger = await staffed.user(STRANGER).say("/dashboard")
    assert "/dashboard/" not in stranger.text and "数据看板" not in stranger.text
    assert "参数不对" in (await staffed.user(OWNER).say("/dashboard 30")).text
    entries = [e for e in await _audit(staffed) if e.command == "dashboard"]
    assert [(e.actor, e.outcome) for e in entries][:2] == [(SERVICE, "refused"), (STRANGER, "refused")]


@pytest.mark.sqlite_only
async def test_the_page_refuses_bad_links_and_bad_ranges(staffed: Shop) -> None:
    key = staffed.client.app[CONFIG].signing_key
    soon = datetime.now(UTC) + timedelta(minutes=5)
    path = await _link(staffed, OWNER, "/看板")
    token = path.rsplit("/", 1)[1]
    client = staffed.client
    assert (await client.get(path[:-10])).status in (403, 404)  # cut
    altered = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    assert (await client.get(f"/dashboard/{altered}")).status == 403
    export = make_export_token(key=key, kind="products", openid=OWNER, expires_at=soon)
    assert (await client.get(f"/dashboard/{export}")).status == 403  # another kind of link
    expired = make_dashboard_token(key=key, openid=OWNER, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    response = await client.get(f"/dashboard/{expired}")
    assert response.status == 410 and "/dashboard" in await response.text()
    not_staff = make_dashboard_token(key=key, openid=STRANGER, expires_at=soon)
    assert (await client.get(f"/dashboard/{not_staff}")).status == 403
    service = make_dashboard_token(key=key, openid=SERVICE, expires_at=soon)
    assert (await client.get(f"/dashboard/{service}")).status == 403
    for query in ("?days=5", "?days=abc", "?start=2026-11-30&end=2026-11-01", "?start=2024-01-01&end=2026-11-01",
                  "?start=nope&end=2026-11-01", "?start=2026-11-01"):
        response = await client.get(path + query)
        assert response.status == 400, query
        assert "日期范围无效" in await response.text()
    assert (await client.get(path + "?start=2026-11-01&end=2026-11-30&lang=en")).status == 200


def test_a_token_names_its_staff_member_and_expiry_only() -> None:
    key = b"k" * 32
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    token = make_dashboard_token(key=key, openid=OWNER, expires_at=soon)
    claim = read_dashboard_token(key=key, token=token)
    assert (claim.openid, claim.expires_at) == (OWNER, soon)
    assert OWNER not in token
    with pytest.raises(LinkError) as raised:
        read_dashboard_token(key=b"x" * 32, token=token)
    assert raised.value.reason == "bad_signature"
    with pytest.raises(LinkError) as raised:
        read_dashboard_token(key=key, token=token, now=soon)
    assert raised.value.reason == "expired"
    with pytest.raises(ValueError):
        make_dashboard_token(key=key, openid=OWNER, expires_at=soon.replace(tzinfo=None))
