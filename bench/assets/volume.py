"""An asset set as an ext4 image: a QEMU guest's ``location: volume``, a second virtio disk.

The image is written straight from a directory tree (``mkfs.ext4 -d``: no loop device, no
mount, no root), the tree made of hard links to the cached asset files so nothing is copied
twice. It is named by the assets it holds and kept beside them in the cache: made once,
attached read-only to every guest that reads the set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.assets import make
from bench.assets.model import AssetSet
from bench.build import cache
from bench.errors import TargetError

LABEL = "bench-assets"
MARGIN = 16 << 20  # ext4's own metadata (journal, inode tables) beyond the files' pages


def ensure(assets: AssetSet, label: str) -> Path:
    """The ext4 image holding each asset of ``assets`` as ``/<key>``, made when missing."""
    key = cache.digest("assets-volume-v1", *(a.key for a in assets.assets))[:16]
    with cache.locked("asset-volumes"):
        image = make.directory() / f"volume-{key}.img"
        if image.is_file():
            return image
        if shutil.which("mkfs.ext4") is None:
            raise TargetError(
                f"{label}: location: volume needs mkfs.ext4", hint="apt-get install e2fsprogs"
            )
        partial = image.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(dir=make.directory()) as tree, cache.unfinished(partial):
            os.chmod(tree, 0o755)  # the image's root directory takes the tree's mode
            files = 0
            for asset in assets.assets:
                shutil.copytree(asset.path, Path(tree) / asset.key, copy_function=os.link)
                files += sum(len(names) + 1 for _, _, names in os.walk(asset.path))
            _mkfs(Path(tree), partial, assets.footprint + assets.footprint // 5 + MARGIN, files)
            partial.rename(image)
        return image


def _mkfs(tree: Path, image: Path, size: int, files: int) -> None:
    """A sparse ext4 image of ``size`` bytes with ``tree``'s files and room for their inodes."""
    size_k = -(-size // 4096) * 4
    command = ["mkfs.ext4", "-q", "-F", "-L", LABEL, "-N", str(files + 256), "-d", str(tree)]
    done = subprocess.run(
        [*command, str(image), f"{size_k}k"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
        raise TargetError(f"cannot write the assets' ext4 image {image}: {lines[-1]}")
    image.chmod(0o644)
