"""Caps that keep one caller from exhausting the server: request body sizes, WHEP sessions, WebSockets.

Every refusal is a 4xx with a reason (413 for bodies, 429 with ``Retry-After`` for session caps) or,
on an open WebSocket, a close with a policy code (1008, 1009). The counts are per server process.
"""
