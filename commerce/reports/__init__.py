"""Reports: statistics and CSV exports."""
