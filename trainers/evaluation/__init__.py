"""Evaluation of a representation: monitors (kNN, PCA), probes, the t-SNE export, baselines, fine-tuning."""
