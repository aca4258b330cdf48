"""The training engine: the PyTorch DCGAN tutorial's loop as a generator of events (torch,
never Textual)."""
