"""Faults for tests/test_workflow_faults.py, injected into every Python process of a
workflow run whose PYTHONPATH starts with this folder, as INPUTSPACE_FAULT says:

    kill:advance:<step>   SIGKILL the optimize job as it is about to take step <step>
    kill:saving:<step>    SIGKILL it half-way through writing the checkpoint of <step>
    pause:advance:<step>  long steps: before step <step> and each later one, wait until
                          SIGTERM asks the job to stop (so no attempt gets far); with
                          INPUTSPACE_FAULT_ONCE naming a file, only one pause ever happens
                          (it creates that file), so a retried job runs through
    enospc:<name>         a full disk while writing an output file called <name>

Nothing here is imported unless the variable is set; the package is patched right
after Python first imports the module concerned.
"""

import errno
import importlib.util
import io
import os
import signal
import sys
import time

FAULT = os.environ.get("INPUTSPACE_FAULT", "")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _pause() -> None:
    once = os.environ.get("INPUTSPACE_FAULT_ONCE")
    if once:
        try:
            open(once, "x").close()
        except FileExistsError:
            return
    from inputspace.optimisation import termination

    for _ in range(36_000):  # a long step, cut short when the job is asked to stop
        if termination.requested():
            return
        time.sleep(0.1)


def _patch_engine(engine) -> None:
    _, where, step = FAULT.split(":")
    step = int(step)
    if where == "advance":
        advance = engine.Descent.advance
        pausing = FAULT.startswith("pause:")

        def advance_or_die(self, observer=None):
            if pausing and self.step >= step:
                _pause()
            elif self.step == step:
                _die()
            return advance(self, observer)

        engine.Descent.advance = advance_or_die
    else:
        save = engine._save_checkpoint

        def save_half_then_die(path, fingerprint, state):
            if state["run"]["step"] == step:
                buffer = io.BytesIO()
                engine.torch.save({"fingerprint": fingerprint, **state}, buffer)
                data = buffer.getvalue()
                engine.partial_of(path).write_bytes(data[: len(data) // 2])
                _die()
            save(path, fingerprint, state)

        engine._save_checkpoint = save_half_then_die


def _patch_tensors(tensors) -> None:
    name = FAULT.split(":", 1)[1]
    save = tensors.save_file

    def save_until_full(arrays, where, metadata=None):
        if os.path.basename(where) == name + ".partial":
            with open(where, "wb") as stream:
                stream.write(b"half a file")
            raise OSError(errno.ENOSPC, "No space left on device")
        save(arrays, where, metadata=metadata)

    tensors.save_file = save_until_full


class _PatchAfterImport:
    """A meta-path finder that runs `patch(module)` right after `name` is imported."""

    def __init__(self, name, patch):
        self.name, self.patch = name, patch

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        execute = spec.loader.exec_module

        def exec_and_patch(module):
            execute(module)
            self.patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


if FAULT.startswith(("kill:", "pause:")):
    sys.meta_path.insert(0, _PatchAfterImport("inputspace.optimisation.engine", _patch_engine))
elif FAULT.startswith("enospc:"):
    sys.meta_path.insert(0, _PatchAfterImport("inputspace.tensors", _patch_tensors))
