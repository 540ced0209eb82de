"""Retrain: when (policies and the evidence they read), on what (datasets from the log) and how
(trainers) a candidate is made."""
