"""tui-gan: train a DCGAN in your terminal and watch it learn.

This package's top level imports nothing heavy: torch loads only when training starts.
"""

__version__ = "0.1.0"
