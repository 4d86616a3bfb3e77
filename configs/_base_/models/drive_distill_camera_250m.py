# Camera student preset 250m: ResNet-50 with a 12-channel stem (4 frames x RGB per camera),
# d_model 1024, BEV projection, 8 decoder layers over 64 waypoint queries, 6 BEV encoder layers.
# Everything else as the 110m preset.
_base_ = ['./drive_distill_camera_110m.py']
model = dict(encoder=dict(dim=1024, num_layers=6), dim=1024, num_decoder_layers=8)
