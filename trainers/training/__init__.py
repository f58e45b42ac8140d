"""Training: ``fit`` and its step, the checkpoint state, DDP helpers, device choice, the ``train`` command."""
