"""What a component's model depends on, for Rasa's cache of trained components."""

import hashlib
import inspect
from pathlib import Path
from types import ModuleType


def source_fingerprint(*modules: ModuleType) -> str:
    """A digest of the modules' source files.

    Rasa fingerprints a custom component by its class's source only, so a change to a helper
    function beside it would reuse a stale trained component; components return this from
    `fingerprint_addon` with every module whose code decides their output.
    """
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(inspect.getfile(module)).read_bytes())
    return digest.hexdigest()
