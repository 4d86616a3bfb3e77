"""projects.drive_distill.structures: trajectory geometry (re-exported from projects.common)."""
from projects.common.structures.trajectory import (constant_velocity_baseline,
                                                   estimate_velocity_ls, unicycle_inverse,
                                                   unicycle_rollout)

__all__ = ['unicycle_rollout', 'unicycle_inverse', 'estimate_velocity_ls',
           'constant_velocity_baseline']
