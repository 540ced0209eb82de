"""Training from the log: dataset assembly, trainers, and candidate evaluation."""
