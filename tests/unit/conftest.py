import pytest


@pytest.fixture(autouse=True)
def _no_network(socket_disabled):
    """Unit tests must not touch the network (pytest-socket)."""
