"""SMS providers for one-time codes: Tencent Cloud SMS in production, a sandbox for development.

`SmsSender.send_code` is called after the code's transaction committed (slow I/O stays
outside transactions) and raises `SmsError` when the code did not go.

- `TencentSms` calls SendSms (API 2021-01-11) through Tencent Cloud's official SDK, which
  signs each request TC3-HMAC-SHA256. Its client blocks (it uses `requests`), so each send
  runs in a thread. `endpoint` is a host ("sms.tencentcloudapi.com") or a URL
  ("http://127.0.0.1:8080", the fake in tests/fakes/tencent_sms.py).
- `SandboxSms` sends nothing: `shows_code` tells the chat to show the code in its reply,
  so the simulators (bot/devtools) and the demo shop can register without a phone.

Neither logs the code or the phone number; the SDK's own logger, which writes whole
requests at DEBUG, is held at INFO by `bot.logs`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlparse


class SmsError(Exception):
    """The provider did not send the message; `code` is its error code (no phone, no code)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class SmsSender(Protocol):
    @property
    def shows_code(self) -> bool:
        """True for the sandbox: the chat shows the code instead of a phone receiving it."""

    async def send_code(self, *, phone: str, code: str, minutes: int) -> None: ...


class SandboxSms:
    """Sends nothing; the chat shows the code (development and the demo shop only)."""

    shows_code = True

    async def send_code(self, *, phone: str, code: str, minutes: int) -> None:
        return None


@dataclass(frozen=True, slots=True)
class TencentSmsSettings:
    secret_id: str
    secret_key: str
    sdk_app_id: str
    sign_name: str
    template_id: str  # a verification template with {1} the code and {2} the minutes it lasts
    region: str = "ap-guangzhou"
    endpoint: str = "sms.tencentcloudapi.com"
    timeout_seconds: float = 10.0


class TencentSms:
    """Tencent Cloud SMS (短信) through `tencentcloud-sdk-python-sms`."""

    shows_code = False

    def __init__(self, settings: TencentSmsSettings) -> None:
        from tencentcloud.common import credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.sms.v20210111 import sms_client

        self._settings = settings
        parsed = urlparse(settings.endpoint if "://" in settings.endpoint else f"https://{settings.endpoint}")
        http = HttpProfile(
            protocol=parsed.scheme or "https",
            endpoint=parsed.netloc,
            reqMethod="POST",
            reqTimeout=max(1, int(settings.timeout_seconds)),
        )
        profile = ClientProfile(signMethod="TC3-HMAC-SHA256", httpProfile=http)
        cred = credential.Credential(settings.secret_id, settings.secret_key)
        self._client = sms_client.SmsClient(cred, settings.region, profile)

    async def send_code(self, *, phone: str, code: str, minutes: int) -> None:
        await asyncio.to_thread(self._send, phone, code, minutes)

    def _send(self, phone: str, code: str, minutes: int) -> None:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
            TencentCloudSDKException,
        )
        from tencentcloud.sms.v20210111 import models

        request = models.SendSmsRequest()
        request.SmsSdkAppId = self._settings.sdk_app_id
        request.SignName = self._settings.sign_name
        request.TemplateId = self._settings.template_id
        request.TemplateParamSet = [code, str(minutes)]
        request.PhoneNumberSet = [f"+86{phone}"]
        try:
            response = self._client.SendSms(request)
        except TencentCloudSDKException as exc:  # its message may quote the request: not kept
            raise SmsError(str(exc.get_code() or "sdk_error")) from None
        statuses = response.SendStatusSet or []
        if not statuses or statuses[0].Code != "Ok":
            raise SmsError(str(statuses[0].Code) if statuses else "no_status")
