# Raster student (BEV raster of the real map polylines + agent / ego history, 96 x 96 at 1 m)
# with the unicycle head on the 10 real nuScenes v1.0-mini scenes (8 train / 2 held out).
_base_ = ['./nuscenes_vector_unicycle.py']
model_name = 'raster_unicycle'
modality_transform = dict(type='RasterizeScene', x_range=(-16.0, 80.0), y_range=(-48.0, 48.0),
                          resolution=1.0)
input_keys = ('raster',)
train_pipeline = [
    dict(type='LoadScenarioWindow', num_history=16, num_future=64),
    dict(type='RandomFlipY', prob=0.5),
    dict(type='ComputeTeacherActions', smooth_weight=0.1),
    modality_transform,
    dict(type='PackDriveInputs', input_keys=input_keys),
]
test_pipeline = [
    dict(type='LoadScenarioWindow', num_history=16, num_future=64),
    modality_transform,
    dict(type='PackDriveInputs', input_keys=input_keys),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(encoder=dict(
    _delete_=True, type='RasterSceneEncoder',
    backbone=dict(type='mmdet.ResNet', depth=18, in_channels=6, num_stages=3, out_indices=(2,),
                  strides=(1, 2, 2), dilations=(1, 1, 1), norm_eval=False),
    backbone_channels=256, dim=128, feat_size=(6, 6), num_layers=1, num_heads=4))
default_hooks = dict(checkpoint=dict(
    filename_tmpl='drive_distill_' + model_name + '_seed{seed}_iter_{}.pth'))
