"""Writing a run's data for other tools: TensorBoard event files (no torch)."""
