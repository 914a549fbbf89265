"""The bridge tests' shared fixtures: one in-process server per test module (of the tiny-random model, or of the
ModelZoo's models on other action spaces), and a client of it per test."""

import pytest
from servers import ModelZoo, start_server

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


@pytest.fixture(scope="module")
def zoo():
    srv = start_server(ModelZoo(), models=tuple(ModelZoo.SPACES))
    yield srv
    srv.stop()
