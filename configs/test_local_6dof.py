# The 6-DoF variant of test_local (the CPU counterpart of finetune_6dof.py): the same grid,
# data, recipe and moving-agent head, with the 13-D 6-DoF ego-motion branch. Its planned-path
# rollout (AerialWorld.predict_with_plan along each window's true future poses) is compared
# with the last frame warped by the same planned poses:
#   python tools/train.py configs/test_local_6dof.py
#   python tools/analysis_tools/eval_occupancy_baselines.py configs/test_local_6dof.py \
#       --plan-checkpoint work_dirs/test_local_6dof/iter_850.pth
# Results: configs/README.md.
_base_ = ['./test_local.py', './_base_/models/aerialworld_6dof_pose_losses.py']

model = dict(
    pose_mode='6dof',
    # pose_envelope is planar-only; the 6-DoF branch keeps the residual (constant-velocity)
    # prior and learns its correction with the 6-DoF losses of finetune_6dof.py
    transformer=dict(pose_envelope=None),
    head=dict(pose_losses={{_base_.pose_losses_6dof}}),
)
