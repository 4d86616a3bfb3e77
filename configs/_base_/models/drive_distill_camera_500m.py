# Camera student preset 500m: ResNet-101 with a 12-channel stem (4 frames x RGB per camera),
# d_model 1280, BEV projection, 10 decoder layers over 64 waypoint queries, 8 BEV encoder layers,
# gradient checkpointing in the backbone, BEV encoder and decoder. Otherwise as the 110m preset.
_base_ = ['./drive_distill_camera_110m.py']
model = dict(
    encoder=dict(backbone=dict(depth=101, with_cp=True), dim=1280, num_layers=8, with_cp=True),
    dim=1280, num_decoder_layers=10, with_cp=True)
