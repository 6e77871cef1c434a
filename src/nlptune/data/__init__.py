"""Data: readers (files -> records), examples, features (tokenized, cached) and batching."""
