"""Training: the one loop (on accelerate), optimizer and schedule, evaluation, checkpoints."""
