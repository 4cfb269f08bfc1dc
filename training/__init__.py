"""Training package: lesion and body sources, synthesis, datasets, training, evaluation."""
