"""``tui-gan bench``: the tutorial's loop as written, the comparison with the engine, and
the cost of the app's screen."""
