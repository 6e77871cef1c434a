"""Strategies: which parameters train, and how fast. One file per strategy."""
