"""c2ws: a streaming client for the Collective2 WebSocket API."""

__version__ = "0.1.0"
