"""The pipeline's steps, one module per DVC stage (`run` and the stage's SEED_OFFSET), and the two
ways to chain them: the validation pass that chooses calibrated stacking (`validation`) and the whole
pipeline in one process (`in_process`, for studies and tests). Stage scripts in stages/ only read
params and files, call these, and write their outputs."""
