"""ZeroMQ + MessagePack bridge: `streamvideo serve`, a Python client and a remote Gymnasium env.

Needs the `bridge` extra (pyzmq, msgpack); names are imported lazily so `import streamvideo.bridge`
works without it. The wire protocol is specified in PROTOCOL.md next to this file.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Client": "client", "Session": "client", "Stream": "client", "StreamEnded": "client", "RemoteChunk": "client",
    "Server": "server", "ServerConfig": "endpoint", "Front": "front", "FrontConfig": "front",
    "RemoteEnv": "remote_env", "RemoteGenerator": "remote_env",
    "BridgeError": "protocol", "Limits": "protocol", "PROTOCOL_VERSION": "protocol",
    "create_keys": "keys",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'streamvideo.bridge' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
