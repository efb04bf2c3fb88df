from __future__ import annotations

import pytest
from moto.server import ThreadedMotoServer

from tests.support.net import free_port


@pytest.fixture
def moto_endpoint(monkeypatch):
    """moto in server mode on loopback, over plain HTTP as a local cloud is."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
