"""Training: Lhotse data, the training loop (optimizer, EMA, DDP, checkpoints) and distillation."""
