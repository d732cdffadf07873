"""Workload assets: a model checkpoint and a dataset, made once on the controller and staged
where each target's workers read them.

An asset is a directory made by the worker package's own code (``python -m workloads assets
make``), named by a hash of what it is made from and cached beside bench's other built
artefacts, so every repetition and every target reads the very same bytes. Where the bytes
live on a target is the workload's ``location`` (image, volume, tmpfs): that is what differs
between isolation kinds, and what the workload measures.

Modules: ``model`` (what an asset and a staged set are), ``make`` (the cache), ``staging``
(the runner's side: which cells read what), ``rules`` (what a suite may not ask for), and the
per-kind helpers ``shm`` (local RAM directories), ``remote`` (SFTP copies), ``docker``
(derived images, mounts) and ``volume`` (ext4 images for a guest's second disk).

Nothing here is imported when a suite is validated except ``rules``, which loads no SDK.
"""
