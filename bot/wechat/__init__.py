"""WeChat transport: the signed webhook, its inbox and replay cache, rate limits, scenes and the API client. No shop knowledge."""
