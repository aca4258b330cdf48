"""Sample grids, PNGs and GIFs: numpy and Pillow, no torch (the app writes GIFs too)."""
