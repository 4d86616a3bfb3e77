"""Shared pytest fixtures and hooks."""
import os
import socket

import pytest

if os.environ.get('PYTEST_XDIST_WORKER'):
    # ``pytest -n 2`` (the README's test command): the workers share the machine's cores, so
    # each worker, and every tool it launches as a subprocess (``tests/tool_runner.py`` passes
    # the environment on), runs torch on one thread unless the caller chose otherwise.
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    os.environ.setdefault('MKL_NUM_THREADS', os.environ['OMP_NUM_THREADS'])
    import torch
    torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))


@pytest.fixture
def free_port():
    """A TCP port that is free now: a distinct torchrun rendezvous port for each test, so
    tests (and other sessions on the same machine) never clash on the default 29500."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def pytest_collection_modifyitems(config, items):
    """Under ``pytest -n N``: the slow end-to-end tests are handed out first.

    pytest-xdist gives each worker the next test (or ``xdist_group``) as soon as it has room,
    in collection order; starting the minute-long subprocess tests first and filling in with
    the short unit tests keeps the workers busy until both are done. Every worker sorts the
    same collection the same way (a stable sort), as xdist requires.
    """
    if os.environ.get('PYTEST_XDIST_WORKER'):
        items.sort(key=lambda item: item.get_closest_marker('slow') is None)


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
