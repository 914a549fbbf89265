"""The bridge tests' shared fixtures: one in-process server per test module, and a client of it per test."""

import pytest
from servers import start_server

from streamvideo.bridge import Client


@pytest.fixture(scope="module")
def server():
    srv = start_server()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with Client(server.endpoints["control"], timeout=30) as c:
        yield c
