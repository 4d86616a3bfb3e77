"""Shared pytest fixtures."""
import socket

import pytest


@pytest.fixture
def free_port():
    """A TCP port that is free now: a distinct torchrun rendezvous port for each test, so
    tests (and other sessions on the same machine) never clash on the default 29500."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
