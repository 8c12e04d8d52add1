"""Variational autoencoders: VAE, conditional VAE, IWAE."""
