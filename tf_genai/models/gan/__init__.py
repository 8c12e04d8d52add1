"""Generative adversarial networks: GAN, DCGAN, WGAN-GP, conditional GAN."""
