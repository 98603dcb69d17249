"""Training: the prompt-tuning loop, its checkpoints and the training order of examples."""
