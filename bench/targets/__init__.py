"""Target kinds: where a workload runs (bare metal, SSH hosts, containers, VMs).

One kind module per kind (``local``, ``ssh``, ``docker``, ``vm``: suite keys and a ``Kind``),
listed in ``registry``; the implementations and ``bench gc`` collectors they name are
imported only when used (``kind`` says how).
"""
