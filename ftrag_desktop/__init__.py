"""ftrag-desktop: a private, on-device knowledge assistant (package root, version only)."""

__version__ = "0.1.0"
