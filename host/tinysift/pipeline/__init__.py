"""The whole pipeline as one run: ``tinysift demo`` and ``tinysift run pipeline.toml``."""
