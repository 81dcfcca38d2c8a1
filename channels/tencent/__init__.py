"""WeChat Official Account and WeCom: their shared base, protocol, message API and channels."""
