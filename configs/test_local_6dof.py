# The 6-DoF variant of test_local (the CPU counterpart of finetune_6dof.py): the same grid,
# data, recipe and moving-agent head, with the 13-D 6-DoF ego-motion branch. Its planned-path
# rollout (AerialWorld.predict_with_plan along each window's true future poses) is compared
# with the last frame warped by the same planned poses:
#   python tools/train.py configs/test_local_6dof.py
#   python tools/analysis_tools/eval_occupancy_baselines.py configs/test_local_6dof.py \
#       --plan-checkpoint work_dirs/test_local_6dof/iter_1300.pth
# Results: configs/README.md.
_base_ = ['./test_local.py']

model = dict(
    pose_mode='6dof',
    # pose_envelope is planar-only; the 6-DoF branch keeps the residual (constant-velocity)
    # prior and learns its correction with the 6-DoF losses of finetune_6dof.py
    transformer=dict(pose_envelope=None),
    head=dict(pose_losses=[
        dict(type='TranslationLoss', target='pose', loss_type='smooth_l1', beta=1.0,
             loss_weight=1.0),
        dict(type='GeodesicRotationLoss', target='rot', loss_weight=1.0),
        dict(type='VelocityLoss', target='vel', loss_type='smooth_l1', beta=1.0,
             linear_weight=0.2, angular_weight=1.0, loss_weight=0.5),
    ]),
)
