"""The HTTP edge, Tencent crypto and API clients, the CLI, and the WeCom/WeChat simulator."""
