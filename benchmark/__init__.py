"""alb: a reproducible benchmark suite for deep active learning on images."""

__version__ = "0.1.0"
