"""feedback-loop: close the machine-learning feedback loop."""

__version__ = "0.1.0"
