"""From result folders to the papers' tables and figures: metrics, plots, tables, leaderboard."""
