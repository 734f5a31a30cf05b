"""Async clients of the Tencent APIs (WeCom and WeChat official accounts) on aiohttp."""

from bot.tencent.errors import TencentAPIError, TencentError, TencentNetworkError
from bot.tencent.wechat import OfficialAccountClient
from bot.tencent.wecom import WeComClient

__all__ = ["OfficialAccountClient", "TencentAPIError", "TencentError", "TencentNetworkError", "WeComClient"]
