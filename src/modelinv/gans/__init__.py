"""GAN training for the generative model-inversion attacks."""
