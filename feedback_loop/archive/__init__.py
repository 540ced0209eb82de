"""Keeping the log for the long run: exports to Parquet and retention of raw rows."""
