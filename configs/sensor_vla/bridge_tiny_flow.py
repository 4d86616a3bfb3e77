# bridge_tiny with the conditional flow-matching head (pi0-style: Beta(1.5, 1) time sampling,
# 10 Euler steps at inference, seeded noise for a deterministic evaluation). The evaluation
# averages 16 sampled chunks per query (num_samples): the action MSE rewards the conditional
# mean, and a single sample adds its spread to the error (measured: nMSE 1.46 with one sample
# against 1.07 for the training-mean baseline).
_base_ = ['./bridge_tiny.py']

model = dict(action_head=dict(
    _delete_=True, type='FlowMatchingActionHead', num_steps=10, time_beta=(1.5, 1.0),
    sample_seed=0, num_samples=16,
    expert=dict(type='ActionExpert', dim=128, chunk_size=8, num_layers=2, num_heads=4,
                dropout=0.1),
    losses=[dict(type='WeightedActionMSELoss', loss_weight=1.0)]))

# flow matching needs more steps than regression to fit the velocity field
max_iters = 1200
warmup_iters = 36
hold_iters = 24
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False,
         begin=warmup_iters + hold_iters, end=max_iters,
         T_max=max_iters - warmup_iters - hold_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
