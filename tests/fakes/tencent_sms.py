"""A fake Tencent Cloud SMS endpoint for tests: SendSms (API 2021-01-11) over real HTTP.

It follows the published protocol: a POST to `/` with a JSON body and the headers
`X-TC-Action: SendSms`, `X-TC-Version: 2021-01-11`, `X-TC-Timestamp`, `X-TC-Region` and
an `Authorization` of the form

    TC3-HMAC-SHA256 Credential=<SecretId>/<yyyy-mm-dd>/sms/tc3_request,
    SignedHeaders=content-type;host, Signature=<hex>

which it checks by computing the signature itself (canonical request, string to sign,
the key derived from "TC3" + SecretKey through the date, the service and "tc3_request").
A good request is answered with a `SendStatusSet`; a bad signature with
`AuthFailure.SignatureFailure`, as Tencent Cloud answers. `fail_with` makes every send
answer that status code instead of "Ok" (e.g. a daily limit of the phone).

Nothing here comes from the SDK: the fake is an independent witness of what it sends.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

SECRET_ID = "AKIDfakeTestSecretId0123456789"
SECRET_KEY = "fakeTestSecretKey0123456789abcd"
SDK_APP_ID = "1400000001"
SIGN_NAME = "测试小店"
TEMPLATE_ID = "100001"
_ids = itertools.count(1)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def tc3_signature(
    *, secret_key: str, method: str, host: str, content_type: str, body: bytes, timestamp: int, service: str
) -> str:
    """The TC3-HMAC-SHA256 signature of a request with no query string."""
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    canonical = "\n".join([
        method, "/", "", f"content-type:{content_type}\nhost:{host}\n", "content-type;host",
        hashlib.sha256(body).hexdigest(),
    ])
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join(["TC3-HMAC-SHA256", str(timestamp), scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


@dataclass
class Sent:
    phone: str  # as sent: "+8613812345678"
    params: list[str]
    sdk_app_id: str
    sign_name: str
    template_id: str


@dataclass
class FakeTencentSms:
    secret_id: str = SECRET_ID
    secret_key: str = SECRET_KEY
    sent: list[Sent] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # error codes answered
    fail_with: str = ""  # a SendStatus code instead of "Ok"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/", self._send_sms)
        return app

    def codes_to(self, phone: str) -> list[str]:
        """The codes sent to an 11-digit phone, oldest first."""
        return [s.params[0] for s in self.sent if s.phone == f"+86{phone}"]

    def _error(self, code: str, message: str) -> web.Response:
        self.refused.append(code)
        body = {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": f"req-{next(_ids)}"}}
        return web.json_response(body)

    async def _send_sms(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("X-TC-Action") != "SendSms" or request.headers.get("X-TC-Version") != "2021-01-11":
            return self._error("InvalidAction", "unknown action or version")
        auth = request.headers.get("Authorization", "")
        algorithm, _, rest = auth.partition(" ")
        parts = dict(p.strip().split("=", 1) for p in rest.split(",") if "=" in p)
        credential = parts.get("Credential", "").split("/")
        if algorithm != "TC3-HMAC-SHA256" or len(credential) != 4 or parts.get("SignedHeaders") != "content-type;host":
            return self._error("AuthFailure.InvalidAuthorization", "malformed Authorization")
        secret_id, date, service, terminator = credential
        if secret_id != self.secret_id or service != "sms" or terminator != "tc3_request":
            return self._error("AuthFailure.SecretIdNotFound", "unknown SecretId")
        try:
            timestamp = int(request.headers.get("X-TC-Timestamp", ""))
        except ValueError:
            return self._error("AuthFailure.InvalidAuthorization", "no timestamp")
        if datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d") != date:
            return self._error("AuthFailure.InvalidAuthorization", "date does not match the timestamp")
        expected = tc3_signature(
            secret_key=self.secret_key, method=request.method, host=request.headers.get("Host", ""),
            content_type=request.headers.get("Content-Type", ""), body=body, timestamp=timestamp, service=service,
        )
        if not hmac.compare_digest(expected, parts.get("Signature", "")):
            return self._error("AuthFailure.SignatureFailure", "signature mismatch")
        payload: dict[str, Any] = json.loads(body)
        statuses = []
        for phone in payload.get("PhoneNumberSet", []):
            code = self.fail_with or "Ok"
            if code == "Ok":
                self.sent.append(Sent(
                    phone=phone, params=list(payload.get("TemplateParamSet", [])),
                    sdk_app_id=payload.get("SmsSdkAppId", ""), sign_name=payload.get("SignName", ""),
                    template_id=payload.get("TemplateId", ""),
                ))
            else:
                self.refused.append(code)
            statuses.append({
                "SerialNo": f"2645:{next(_ids)}", "PhoneNumber": phone, "Fee": 1, "SessionContext": "",
                "Code": code, "Message": "send success" if code == "Ok" else "refused", "IsoCode": "CN",
            })
        return web.json_response({"Response": {"SendStatusSet": statuses, "RequestId": f"req-{next(_ids)}"}})
