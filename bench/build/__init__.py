"""Matched artefacts: one wheelhouse installs the bare-metal venv, the container image and the
VM disk, so that every target runs byte-identical Python packages."""
