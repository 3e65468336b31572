"""A training run's life: ``Run`` (step, evaluate, save, restore), the ``train`` loop, checkpoints and their
sidecar, the acting export, MLflow tracking and the evaluation report."""
