"""Registry ``locations`` name package roots whose ``__init__`` imports every registering module."""
import importlib
import os
import os.path as osp
import sys

import projects
from projects import registry

LOCATION_LISTS = ('_MODEL_LOCATIONS', '_DATA_LOCATIONS', '_TRANSFORM_LOCATIONS',
                  '_METRIC_LOCATIONS', '_HOOK_LOCATIONS', '_ENGINE_LOCATIONS')
ROOT = osp.dirname(osp.abspath(projects.__file__))


def _locations():
    return sorted({loc for name in LOCATION_LISTS for loc in getattr(registry, name)})


def _registering_modules():
    """Dotted names of every module under ``projects/`` that calls ``register_module(``."""
    for dirpath, _, files in os.walk(ROOT):
        for fname in sorted(files):
            path = osp.join(dirpath, fname)
            if not fname.endswith('.py') or path == registry.__file__:
                continue
            with open(path, encoding='utf-8') as f:
                if '.register_module(' not in f.read():
                    continue
            name = osp.relpath(path, osp.dirname(ROOT))[:-3].replace(os.sep, '.')
            yield name[:-len('.__init__')] if name.endswith('.__init__') else name


def test_locations_are_package_roots():
    for loc in _locations():
        mod = importlib.import_module(loc)
        assert hasattr(mod, '__path__'), f'{loc} is a module, not a package root'
        parents = [other for other in _locations() if loc.startswith(other + '.')]
        assert not parents, f'{loc} is inside {parents}: list the root only'


def test_every_registering_module_sits_under_a_location_and_is_imported():
    projects.register_all_modules()
    locs = _locations()
    stray, missing = [], []
    for name in _registering_modules():
        if not any(name == loc or name.startswith(loc + '.') for loc in locs):
            stray.append(name)
        elif name not in sys.modules:
            missing.append(name)
    assert not stray, f'registering modules outside every registry location: {stray}'
    assert not missing, f'registering modules no package __init__ imports: {missing}'
