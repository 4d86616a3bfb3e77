"""Video world model (system 5): action-conditioned encoder / FiLM dynamics / decoder over
camera sequences, evaluated with per-horizon PSNR / SSIM."""
