"""Host-side measurements of a deployment, taken by the controller, not by the worker."""
