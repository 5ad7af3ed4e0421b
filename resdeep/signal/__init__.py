"""How signal and gradient travel through a net at initialisation (and after training): measured
per layer beside mean-field theory, and shattered gradients along a line of inputs."""
