"""Pure computation over NumPy arrays: metrics, drift statistics and detectors, label-free
estimation, significance tests. Nothing here knows storage, HTTP or any other part of the
package."""
