"""WeChat API error codes and the exception that carries them."""

from __future__ import annotations

from enum import IntEnum


class ErrCode(IntEnum):
    """The `errcode` values this project reacts to (an IntEnum: compares equal to the int)."""

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
    """Retries ran out on network errors, timeouts, HTTP 5xx or `-1` (busy)."""

    def __init__(self, errmsg: str) -> None:
        super().__init__(ErrCode.BUSY, errmsg)


def checked(answer: object) -> dict:
    """WeChat's JSON answer, or `WeChatError` when it carries a non-zero errcode."""
    if not isinstance(answer, dict):
        raise WeChatError(ErrCode.UNREADABLE, "answer is not a JSON object")
    errcode = answer.get("errcode", 0)
    if errcode:
        raise WeChatError(int(errcode), str(answer.get("errmsg", "")))
    return answer
