"""Target kinds: where a workload runs (bare metal, later SSH hosts, containers, VMs)."""
