# Two-stage recipe, stage 2: start from the stage-1 checkpoint (VL-side weights and action
# expert; the new sensor encoder and fusion start fresh, load_from is non-strict), enable the
# sensor (concat fusion, sensor sessions weighted x2) with the seed's stage-2 learning rates:
# 5e-5 for the expert, 5e-4 for the sensor encoder.
_base_ = ['./insertion_stage1_no_sensor.py']

model = dict(fusion=dict(strategy='concat'))
train_dataloader = dict(dataset=dict(use_sensor=True))
load_from = 'work_dirs/insertion_stage1_no_sensor/iter_200.pth'
optim_wrapper = dict(optimizer=dict(lr=5e-5),
                     paramwise_cfg=dict(custom_keys={'sensor_encoder': dict(lr_mult=10.0)}))
