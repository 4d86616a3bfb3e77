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


def pytest_sessionfinish(session, exitstatus):
    """With ``FAIL_ON_SKIP=1`` (set by ``.ci/run``), a run that skipped any test fails.

    A skip on a clean machine almost always means a package that ``tools/install.sh`` did not
    install, so the path it guards was never exercised; CI must say so instead of passing.
    """
    import os
    if os.environ.get('FAIL_ON_SKIP') != '1':
        return
    reporter = session.config.pluginmanager.get_plugin('terminalreporter')
    skipped = reporter.stats.get('skipped', []) if reporter is not None else []
    if skipped:
        for rep in skipped:
            reason = rep.longrepr[-1] if isinstance(rep.longrepr, tuple) else rep.longrepr
            reporter.write_line(f'FAIL_ON_SKIP: {rep.nodeid}: {reason}', red=True)
        reporter.write_line(f'FAIL_ON_SKIP: {len(skipped)} test(s) skipped; CI fails on a skip '
                            '(install the missing package in tools/install.sh)', red=True)
        session.exitstatus = 1
