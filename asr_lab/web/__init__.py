"""The seed's server: any registered processor over HTTP + WebSocket (extra ``server``)."""
