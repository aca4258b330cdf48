"""The app's widgets, one feature per module."""
