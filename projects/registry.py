"""Registries of mmembodied.

Every registry is a child of the corresponding MMEngine root registry, so components of
MMEngine, MMCV, MMDetection and MMDetection3D stay reachable from our configs (for example
``dict(type='mmdet.ResNet')``). The whole codebase uses one scope, ``'projects'`` (the
package name, so MMEngine can import ``projects.registry`` by scope); configs set
``default_scope = 'projects'``.

The ``locations`` lists make MMEngine import the modules that register components the first
time a registry is queried, so ``import projects`` (or any registry lookup) is enough.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

SCOPE = 'projects'

_MODEL_LOCATIONS = [
    'projects.common.losses',
    'projects.aerialworld.models',
    'projects.drive_distill.models',
    'projects.lidar_llm.models',
    'projects.sensor_vla.models',
    'projects.video_world.models',
]
_DATA_LOCATIONS = ['projects.aerialworld.datasets', 'projects.drive_distill.datasets',
                   'projects.lidar_llm.datasets', 'projects.sensor_vla.datasets',
                   'projects.video_world.datasets']
_TRANSFORM_LOCATIONS = ['projects.aerialworld.transforms', 'projects.drive_distill.transforms',
                        'projects.lidar_llm.transforms', 'projects.sensor_vla.transforms',
                        'projects.video_world.transforms']
_METRIC_LOCATIONS = ['projects.common.metrics']
_HOOK_LOCATIONS = ['projects.common.hooks', 'projects.common.visualization',
                   'projects.aerialworld.hooks', 'projects.drive_distill.hooks',
                   'projects.sensor_vla.hooks',
                   'projects.video_world.hooks']
_ENGINE_LOCATIONS = ['projects.common.engine']

RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, scope=SCOPE,
                   locations=_ENGINE_LOCATIONS)
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope=SCOPE,
                 locations=_ENGINE_LOCATIONS)
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope=SCOPE,
                 locations=_HOOK_LOCATIONS)
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS,
                          scope=SCOPE, locations=_ENGINE_LOCATIONS)
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope=SCOPE,
                    locations=_DATA_LOCATIONS)
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS,
                         scope=SCOPE, locations=_DATA_LOCATIONS)
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope=SCOPE,
                      locations=_TRANSFORM_LOCATIONS)
MODELS = Registry('model', parent=MMENGINE_MODELS, scope=SCOPE,
                  locations=_MODEL_LOCATIONS)
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS,
                          scope=SCOPE, locations=_ENGINE_LOCATIONS)
WEIGHT_INITIALIZERS = Registry('weight initializer',
                               parent=MMENGINE_WEIGHT_INITIALIZERS,
                               scope=SCOPE, locations=_MODEL_LOCATIONS)
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
                                      scope=SCOPE, locations=_ENGINE_LOCATIONS)
RUNNER_CONSTRUCTORS = Registry('runner constructor', parent=MMENGINE_RUNNER_CONSTRUCTORS,
                               scope=SCOPE, locations=_ENGINE_LOCATIONS)
STRATEGIES = Registry('strategy', parent=MMENGINE_STRATEGIES, scope=SCOPE,
                      locations=_ENGINE_LOCATIONS)
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, scope=SCOPE,
                      locations=_ENGINE_LOCATIONS)
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS,
                          scope=SCOPE, locations=_ENGINE_LOCATIONS)
PARAM_SCHEDULERS = Registry('parameter scheduler',
                            parent=MMENGINE_PARAM_SCHEDULERS, scope=SCOPE,
                            locations=_ENGINE_LOCATIONS)
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope=SCOPE,
                   locations=_METRIC_LOCATIONS)
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, scope=SCOPE,
                     locations=_METRIC_LOCATIONS)
TASK_UTILS = Registry('task util', parent=MMENGINE_TASK_UTILS, scope=SCOPE,
                      locations=_MODEL_LOCATIONS)
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, scope=SCOPE,
                       locations=_HOOK_LOCATIONS)
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, scope=SCOPE,
                       locations=_HOOK_LOCATIONS)
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, scope=SCOPE,
                     locations=_DATA_LOCATIONS)
