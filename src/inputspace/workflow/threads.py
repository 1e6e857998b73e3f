"""The thread limit a job runs with: torch's intra-op threads set to the rule's threads.
It changes results (floating-point sums taken in another order), so the code digest of
every rule whose code imports torch holds this module (inputspace.provenance.code_digest)."""

import sys


def limit_threads(threads: int) -> None:
    """Torch's threads, where the script imported torch (a figure or table job does not,
    and is not made to pay for it)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(max(1, int(threads)))
