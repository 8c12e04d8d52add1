"""Figures for generative models: every function returns a matplotlib Figure."""
