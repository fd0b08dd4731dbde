"""Real-size pipelines (Stable Diffusion 1.5 shapes, randomly initialised) for timing and
memory: `attribcheck realsize build` and `python -m attribcheck.bench realsize`."""
