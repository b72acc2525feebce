"""Face-focal cropping: detect faces, frame head-and-shoulders, write square crops and their parameters."""
