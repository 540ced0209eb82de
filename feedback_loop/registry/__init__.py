"""The model registry: versions, their hash-checked artifacts, and aliases."""
