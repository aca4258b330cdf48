"""Screens pushed over the training screen: help, learning rates, latent walks."""
