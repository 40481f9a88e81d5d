"""What every modality shares: loading, validation (Great Expectations), metrics, plots, the report,
publishing and promotion of run folders, prediction with a saved run, and the one PyTorch training
loop with the base of the neural modalities."""
