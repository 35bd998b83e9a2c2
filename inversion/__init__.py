"""Privacy leakage of split inference by decoder inversion: Lea(z) = SSIM(I_o, I_r | z) (paper eq. 3).

data (offline images) · features (cached cut tensors) · decoder (g_z) · attack (train/score one split) ·
metrics (SSIM, PSNR, CI, floor) · consistency (a deeper split never leaks more) · leakage_sets (active
and earlier sets in a table) · store (results file, profile table) · report (figures) · run · commands.
"""
