"""Statistical-level attribution: a discriminator over a model's key-distance profile."""
