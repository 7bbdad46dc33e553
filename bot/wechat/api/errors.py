"""WeChat API error codes and the exception that carries them."""

from __future__ import annotations

from enum import IntEnum


class ErrCode(IntEnum):
    """The `errcode` values this project reacts to (an IntEnum: compares equal to the int)."""

    NOT_CONFIGURED = -4  # ours, not WeChat's: no appsecret, so no API calls at all
    UNCERTAIN = -3  # ours, not WeChat's: the request may have arrived, its answer never did
    UNREADABLE = -2  # ours, not WeChat's: the answer was not the expected JSON
    BUSY = -1  # system busy: retry later
    OK = 0
    INVALID_CREDENTIAL = 40001  # access_token invalid or not the latest
    INVALID_ACCESS_TOKEN = 40014
    ACCESS_TOKEN_EXPIRED = 42001
    UNSUBSCRIBED = 43004  # the user does not follow the account
    API_QUOTA = 45009  # daily API call quota reached
    WINDOW_CLOSED = 45015  # customer-service message outside the 48-hour window
    OVER_QUOTA = 45047  # too many customer-service messages without a reply from the user


BUSY = ErrCode.BUSY
INVALID_CREDENTIAL = ErrCode.INVALID_CREDENTIAL
INVALID_ACCESS_TOKEN = ErrCode.INVALID_ACCESS_TOKEN
ACCESS_TOKEN_EXPIRED = ErrCode.ACCESS_TOKEN_EXPIRED
UNSUBSCRIBED = ErrCode.UNSUBSCRIBED
API_QUOTA = ErrCode.API_QUOTA
WINDOW_CLOSED = ErrCode.WINDOW_CLOSED
OVER_QUOTA = ErrCode.OVER_QUOTA

TOKEN_ERRORS = frozenset({INVALID_CREDENTIAL, INVALID_ACCESS_TOKEN, ACCESS_TOKEN_EXPIRED})


class WeChatError(Exception):
    """WeChat answered with a non-zero `errcode` (never carries the access token)."""

    def __init__(self, errcode: int, errmsg: str = "") -> None:
        super().__init__(f"WeChat error {errcode}: {errmsg}")
        self.errcode = int(errcode)
        self.errmsg = errmsg

    @property
    def code(self) -> ErrCode | int:
        """The errcode as an `ErrCode` when known, else the plain int."""
        try:
            return ErrCode(self.errcode)
        except ValueError:
            return self.errcode


class WeChatUnavailable(WeChatError):
    """Certainly not done, and retries ran out: the connection could not be made (refused,
    DNS, connect timeout), an HTTP 5xx that is a refusal, or `-1` (busy)."""

    def __init__(self, errmsg: str) -> None:
        super().__init__(ErrCode.BUSY, errmsg)


class WeChatUncertain(WeChatError):
    """The request may have reached WeChat but no answer came back (a timeout while
    waiting for it, the connection reset or cut mid-answer, a gateway's 502/504).

    WeChat may have acted on it: a message send that ends so must not be repeated
    blindly (`bot/outbound/planner.py` reconciles it instead). Not a `WeChatUnavailable`,
    which means "certainly not done"."""

    def __init__(self, errmsg: str) -> None:
        super().__init__(ErrCode.UNCERTAIN, errmsg)


def checked(answer: object) -> dict:
    """WeChat's JSON answer, or `WeChatError` when it carries a non-zero errcode."""
    if not isinstance(answer, dict):
        raise WeChatError(ErrCode.UNREADABLE, "answer is not a JSON object")
    errcode = answer.get("errcode", 0)
    if errcode:
        raise WeChatError(int(errcode), str(answer.get("errmsg", "")))
    return answer


class MediaTooLarge(Exception):
    """A media file larger than the caller takes: not read past the limit, never retried."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"media larger than {limit} bytes")
        self.limit = limit
