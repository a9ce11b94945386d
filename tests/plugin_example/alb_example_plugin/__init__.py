"""An example alb plugin (see declarations.py for what alb reads without importing torch)."""
