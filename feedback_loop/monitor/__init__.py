"""Monitor: windowed metrics, references, drift checks, label-free estimates and segments,
read from the log and handed to the pure computation in :mod:`feedback_loop.stats`."""
