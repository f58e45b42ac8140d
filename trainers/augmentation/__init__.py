"""Batched augmentations on the device: the kernels with their parameters, and the pipeline built from them."""
