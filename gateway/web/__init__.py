"""The aiohttp server side: request pipeline, login, proxy and endpoints."""
