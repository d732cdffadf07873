"""Upper bounds for every number a suite can give, as pydantic types.

A suite is input: ``timeout_s: .inf`` would give a cell that never times out, ``cpus: 1e-12``
rounds to "no limit" at the engine, and ``repetitions: 1e9`` builds a plan that does not fit
in memory. Each bound below is far above any real benchmark and low enough that nothing bench
derives from it (an array per iteration, a dataset on disk, a plan in memory) can explode.
Floats are finite everywhere: ``inf`` and ``nan`` are refused before any arithmetic.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

DAY_S = 86_400.0
MAX_REPETITIONS = 10_000
MAX_CELLS = 100_000
MAX_TARGETS = 1_000
MAX_WORKLOADS = 1_000
MAX_ITERATIONS = 1_000_000
MAX_BATCH = 65_536
MAX_SAMPLES = 10_000_000
MAX_SAMPLE_BYTES = 1 << 30
MAX_DATASET_BYTES = 256 << 30
MAX_WORKERS = 256
MAX_EPOCHS = 1_000
MAX_THREADS = 1_024
MAX_CPUS = 1_024
MAX_HOST_CPU = 8_191  # the kernel's largest CPU number (NR_CPUS)
MIN_CPUS = 0.01
MAX_GPUS = 256
MAX_SIZE = 16 << 40  # 16 TiB of memory
MAX_RETRIES = 100
MAX_LR = 1_000.0
MAX_IMAGE_EDGE = 8_192  # pixels
MAX_SEQUENCE = 131_072  # tokens
MAX_LAYERS = 1_024
MAX_WIDTH = 1 << 20  # hidden size, heads, vocabulary

Seconds = Annotated[float, Field(gt=0, le=DAY_S, allow_inf_nan=False)]
"""A timeout: positive, finite, at most one day."""

Count = Annotated[int, Field(ge=1, le=MAX_ITERATIONS)]
"""Steps, requests: at least one, at most a million (each can leave a value in raw/)."""

Warmup = Annotated[int, Field(ge=0, le=MAX_ITERATIONS)]
"""Warmup iterations: none to a million."""

Batch = Annotated[int, Field(ge=1, le=MAX_BATCH)]
"""A batch size."""

Cpus = Annotated[float, Field(ge=MIN_CPUS, le=MAX_CPUS, allow_inf_nan=False)]
"""A CPU quota: 0.01 to 1024 (a smaller quota rounds to "no limit" at the engine)."""

GpuCount = Annotated[int, Field(ge=1, le=MAX_GPUS)]
"""A number of GPUs."""
