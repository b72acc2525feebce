"""Textual Inversion training: a host-independent trainer that drives any backend through ``backend.TrainingBackend``."""
