"""Streaming concept-drift detectors with one shared shape.

Every detector is fed one value per step with ``update(x)`` and then exposes
``drift_detected`` and ``warning_detected`` for that step, plus ``n_seen`` and
``n_detections``. After a drift it restarts its own statistics, so it keeps monitoring the new
concept without being reset by the caller.

====================  ===============  =======  ======================================
Detector              Input            Warning  Idea
====================  ===============  =======  ======================================
:class:`DDM`          0/1 errors       yes      error rate rises above its best level
:class:`EDDM`         0/1 errors       yes      errors come closer together
:class:`HDDM_A`       values in [0,1]  yes      Hoeffding test, prefix vs. whole mean
:class:`ADWIN`        real values      no       adaptive window, two-sided mean change
:class:`PageHinkley`  real values      no       cumulative deviation from running mean
====================  ===============  =======  ======================================

>>> from feedback_loop.stats.drift.detectors import DDM, run
>>> run(DDM(), [0, 0, 0, 1] * 500 + [1, 1, 0, 1] * 100)
[2099]
"""

from .adwin import ADWIN
from .base import Detector, DriftDetector, run
from .ddm import DDM
from .eddm import EDDM
from .hddm_a import HDDM_A
from .page_hinkley import PageHinkley

__all__ = ["ADWIN", "DDM", "EDDM", "HDDM_A", "Detector", "DriftDetector", "PageHinkley", "run"]
