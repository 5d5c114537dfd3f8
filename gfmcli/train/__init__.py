"""Training: chips (gfm tile), datasets, Hyper-MAE pretraining, fine-tuning, metrics."""
