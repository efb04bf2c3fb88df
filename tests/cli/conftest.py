from __future__ import annotations

import socket

import pytest
from moto.server import ThreadedMotoServer


@pytest.fixture
def moto_endpoint(monkeypatch):
    """moto in server mode on loopback, over plain HTTP as a local cloud is."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
