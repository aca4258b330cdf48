"""Training data: the built-in glyphs, image folders and torchvision datasets, decoded
once into the decode cache, held on the device or streamed. Never imports the engine."""
