# Multi-modal vector student: 6 trajectory modes trained winner-takes-all (the best mode by
# ADE gets the regression loss) + mode cross-entropy; the test table adds minADE_6 / minFDE_6,
# miss rates over 6 modes and brier-minFDE_6. Data and schedule as nuscenes_vector_unicycle.
_base_ = ['./nuscenes_vector_unicycle.py']
model_name = 'vector_wta6'
num_modes = 6
model = dict(
    num_modes=num_modes,
    multimodal_loss=dict(type='WTALoss', mode_weight=0.5,
                         regression=dict(type='TrajectoryLoss', position_loss='l2',
                                         yaw_weight=0.3)))
default_hooks = dict(checkpoint=dict(
    filename_tmpl='drive_distill_' + model_name + '_seed{seed}_iter_{}.pth'))
