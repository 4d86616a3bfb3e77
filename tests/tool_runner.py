"""Running the project's command-line tools from the end-to-end tests.

Importable from every test module: pytest puts ``tests/`` on ``sys.path`` for its
``conftest.py`` (rootdir-relative "prepend" import mode, ``pytest.ini``).
"""
import os
import os.path as osp
import subprocess
from typing import Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def tool_env(threads: str = '2', force_threads: bool = False,
             port: Optional[int] = None) -> dict:
    """Environment for a tool subprocess.

    Args:
        threads (str): ``OMP_NUM_THREADS`` for the tool. Defaults to '2'.
        force_threads (bool): Override a value the caller's environment already sets (runs
            compared float by float need the same thread count). Defaults to False.
        port (int, optional): ``PORT`` for ``tools/dist_*.sh`` (torchrun rendezvous).

    Returns:
        dict: A copy of ``os.environ`` with unbuffered Python output.
    """
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    if force_threads:
        env['OMP_NUM_THREADS'] = threads
    else:
        env.setdefault('OMP_NUM_THREADS', threads)
    if port is not None:
        env['PORT'] = str(port)
    return env


def run_tool(args: Sequence[str], timeout: float = 600, env: Optional[dict] = None,
             **kwargs) -> str:
    """Run ``args`` in the repository root and assert that it exits with 0.

    Args:
        args (Sequence[str]): Command line.
        timeout (float): Seconds before ``subprocess.TimeoutExpired``. Defaults to 600.
        env (dict, optional): Environment; defaults to :func:`tool_env`.
        **kwargs: Passed on to :func:`subprocess.run`.

    Returns:
        str: stdout followed by stderr.

    Raises:
        AssertionError: On a non-zero exit, with the last 6000 characters of the output.
    """
    proc = subprocess.run(list(args), cwd=ROOT, env=env or tool_env(), capture_output=True,
                          text=True, timeout=timeout, **kwargs)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{list(args)} failed ({proc.returncode}):\n{out[-6000:]}'
    return out
