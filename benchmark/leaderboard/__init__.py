"""`alb leaderboard`: many verified bundles merged into one static site (sources -> merge -> boards -> site)."""
