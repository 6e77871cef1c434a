"""Tasks: one file per task, each with its config, featurize, model kwargs, decode and score."""
