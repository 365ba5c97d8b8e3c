"""This node's id: the 8 bytes its association claims carry.

It must survive restarts.  A new id per start made every station that ever
roamed look claimed by "another node" (the id before the restart) when the
peers' dump came in, and the AP kicked its own stations.  Taken from the
configuration (--node-id, UCI node_id) or else from a small state file,
written once at the first start and read ever after.
"""

from __future__ import annotations

import logging
import os

from sroamd.config import Config, ConfigError, parse_node_id

log = logging.getLogger("sroamd")

STATE_FILE = "node_id"


def node_id_path(config: Config) -> str:
    return os.path.join(config.state_dir, STATE_FILE)


def load_node_id(config: Config) -> bytes:
    """The configured id, the one kept in the state file, or a new one kept there.

    A state file that cannot be written leaves a random id for this run, with
    a warning: the daemon still works, but its next restart kicks stations."""
    if config.node_id is not None:
        return config.node_id
    path = node_id_path(config)
    try:
        with open(path) as f:
            return parse_node_id(f.read())
    except FileNotFoundError:
        pass
    except (OSError, ConfigError) as e:
        log.error("%s: %s; writing a new node id", path, e)
    node_id = os.urandom(8)
    while node_id == bytes(8):
        node_id = os.urandom(8)
    try:
        os.makedirs(config.state_dir, exist_ok=True)
        temporary = f"{path}.{os.getpid()}"
        with open(temporary, "w") as f:
            f.write(node_id.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
        log.warning("new node id %s, kept in %s", node_id.hex(), path)
    except OSError as e:
        log.error("cannot keep the node id in %s (%s): a restart will kick this AP's "
                  "stations; set --node-id / option node_id", path, e)
    return node_id
