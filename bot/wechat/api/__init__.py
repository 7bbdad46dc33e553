"""Talking back to WeChat: the API client, the shared access token, the outbound sender."""

from bot.wechat.api.client import (
    DownloadedMedia,
    MediaSource,
    NoMediaSource,
    QrCode,
    UploadedMedia,
    WeChatClient,
    validate_scene_str,
)
from bot.wechat.api.errors import (
    ErrCode,
    MediaTooLarge,
    WeChatError,
    WeChatUnavailable,
    WeChatUncertain,
)
from bot.wechat.api.sender import CustomerServiceSender
from bot.wechat.api.token import (
    AccessTokenManager,
    MemoryTokenStore,
    RedisTokenStore,
    StableTokenFetcher,
    TokenProvider,
)

__all__ = [
    "AccessTokenManager",
    "CustomerServiceSender",
    "DownloadedMedia",
    "ErrCode",
    "MediaSource",
    "MediaTooLarge",
    "MemoryTokenStore",
    "NoMediaSource",
    "QrCode",
    "RedisTokenStore",
    "StableTokenFetcher",
    "TokenProvider",
    "UploadedMedia",
    "WeChatClient",
    "WeChatError",
    "WeChatUnavailable",
    "WeChatUncertain",
    "validate_scene_str",
]
