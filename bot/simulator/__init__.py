"""The project's own WeCom / WeChat simulator: Tencent's APIs (`TencentSimulator`) and Tencent's
callback delivery (`CallbackDriver`), for tests and `qianmian demo`."""

from bot.simulator.driver import CallbackDriver, DeliveryResult, OAEndpoint
from bot.simulator.server import SimCall, TencentSimulator

__all__ = ["CallbackDriver", "DeliveryResult", "OAEndpoint", "SimCall", "TencentSimulator"]
