"""Submission bundles: `alb bundle` writes one (create.py), `alb verify` checks one (verify.py)."""
