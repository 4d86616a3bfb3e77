# Multi-modal vector student: 6 trajectory modes as a Laplace mixture (per-step log-sigma
# head) trained by negative log-likelihood (MultiPath-style). Data and schedule as
# nuscenes_vector_unicycle.
_base_ = ['./nuscenes_vector_unicycle.py']
model_name = 'vector_nll6'
num_modes = 6
model = dict(
    num_modes=num_modes,
    multimodal_loss=dict(type='MixtureNLLLoss', distribution='laplace', log_sigma_min=-3.0,
                         log_sigma_max=4.0))
default_hooks = dict(checkpoint=dict(
    filename_tmpl='drive_distill_' + model_name + '_seed{seed}_iter_{}.pth'))
