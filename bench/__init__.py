"""bench: measure what isolation costs AI workloads.

The controller package. It never imports torch: the host that drives a suite may have no
GPU stack at all; everything that touches torch lives in ``workloads`` and runs on a target.
"""

__version__ = "0.1.0"
