"""``bench nightly`` and what serves it.

``run``: one night as a function (lock, index check, run, report, record, alert, export,
prune) returning an ``Outcome``. ``history``: the index of a suite's runs, which run is
comparable with which, fingerprint events. ``record``: a run added to the index and compared.
``drift`` and ``changepoints``: what the index says about run-to-run noise and steps.
``retention``, ``lock``, ``alerts`` (+ ``webhook``), ``export``, ``schedule``: one job each.
"""
