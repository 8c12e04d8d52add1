"""Evaluation: likelihoods for VAEs, feature-space sample metrics for every generator."""
