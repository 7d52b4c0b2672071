"""The command that starts a run again as it was started (the resume line of an interrupted
run): under torchrun, torchrun's part of it; in one process, nothing. Reads the environment
only: no torch."""

from __future__ import annotations

import os
import sys
from typing import Dict, List, Optional

#: set by ``recbole-ext-torchrun`` (:mod:`recbole_ext.cli.launch`): the launcher the resume line names
LAUNCHER_VARIABLE = "RECBOLE_EXT_LAUNCHER"


def relaunch_prefix(env: Optional[Dict[str, str]] = None, argv0: Optional[str] = None) -> List[str]:
    """The launcher part of a command that starts this run again as it was started: under
    torchrun, ``torchrun`` with this node's share (``--nproc_per_node``; across machines also
    ``--nnodes``, ``--node_rank``, ``--master_addr``, ``--master_port``) and the script (or
    ``-m recbole_ext``); ``[]`` in one process or RecBole's spawn form (``--nproc=N`` is an
    argument of the command itself)."""
    env = os.environ if env is None else env
    if "LOCAL_RANK" not in env or "TORCHELASTIC_RUN_ID" not in env and "LOCAL_WORLD_SIZE" not in env:
        return []
    local = int(env.get("LOCAL_WORLD_SIZE", "1"))
    nodes = max(1, int(env.get("WORLD_SIZE", str(local))) // max(1, local))
    out = [env.get(LAUNCHER_VARIABLE, "torchrun")]  # recbole-ext-torchrun sets it
    if nodes > 1:
        out += [
            f"--nnodes={nodes}",
            f"--node_rank={env.get('GROUP_RANK', '0')}",
            f"--master_addr={env.get('MASTER_ADDR', 'localhost')}",
            f"--master_port={env.get('MASTER_PORT', '29500')}",
        ]
    out.append(f"--nproc_per_node={local}")
    script = argv0 if argv0 is not None else sys.argv[0]
    return out + (["-m", "recbole_ext"] if os.path.basename(script) == "__main__.py" else [script])
