# Test-only: in each torch.distributed.run worker (LOCAL_RANK set) of a PAIRHOOK_TEST_CPU_DDP run, apply the CPU/gloo
# patches of cpu_gloo.py before the worker script Ultralytics generated runs. This directory is first on PYTHONPATH.
import os

if os.environ.get("PAIRHOOK_TEST_CPU_DDP") and os.environ.get("LOCAL_RANK") is not None:
    import cpu_gloo

    cpu_gloo.apply()
