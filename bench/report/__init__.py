"""Rendering stored results for people: console tables now, files and plots beside them."""
