"""Fault injection: one test per fault, against the real daemons and filesystems."""
