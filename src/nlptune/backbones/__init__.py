"""Backbones: where pre-trained weights come from and how they are loaded."""
