"""Training: on-device augmentation, the trainer, evaluation and pool scoring."""
