# AerialWorld main job: the complete two-stage recipe (VQ-VAE tokenizer, then the world model
# with the tokenizer frozen) on Tokyo PLATEAU occupancy sessions at the seed's full grid
# (200 x 200 x 121, 0.4 m x 0.4 m x 1.25 m, z = 0..150 m above ground), 4 history + 6 future
# frames at 2 Hz.        python tools/train.py configs/finetune_tokyo.py
# The model (_base_/models/aerialworld.py) and the schedule (_base_/schedules/
# aerialworld_two_stage.py: 20000 iterations, the tokenizer for the first 8000) are the bases'.
# Stage-by-stage alternatives: configs/vqvae_tokyo.py then configs/worldmodel_tokyo.py.
# Results and commands: configs/README.md; tuning history: docs/aerialworld_tuning.md.
_base_ = [
    './_base_/aerialworld_runtime.py',
    './_base_/datasets/tokyo_plateau.py',
    './_base_/models/aerialworld.py',
    './_base_/schedules/aerialworld_two_stage.py',
]
# The classes of the dataset base (the PLATEAU city with traffic: free = 9); the copy-through
# decoder warps the static classes only (vehicles, pedestrians and drones move on their own).
model = dict(
    num_classes={{_base_.num_classes}},
    free_label={{_base_.free_label}},
    tokenizer=dict(num_classes={{_base_.num_classes}}, free_label={{_base_.free_label}}),
    copy_decode=dict(static_classes={{_base_.static_classes}}))
val_dataloader = dict(dataset=dict(window_stride=5))
test_dataloader = val_dataloader
default_hooks = dict(checkpoint=dict(interval=1000))
