"""``bench nightly`` and what serves it: the history of a suite's runs, the workflow around
one night's run (lock, record, compare, alert, export, prune), schedules and webhooks."""
