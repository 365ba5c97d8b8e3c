"""sroamd's own ubus object and events: `ubus call sroamd status`, ...

  status   node id, interfaces, peers and their state, counts
  leases   the leases (the first 2,000, and how many): address, client MAC,
           remaining seconds, holding node
  clients  stations served here, with their addresses
  peers    configured peers and live flooding sessions
  roams    the last roams (bounded, newest first: sroamd/roam_history.py)
and the event `sroamd.roam` when a client arrives here or leaves for
another node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sroamd import status
from sroamd.dump import format_mac
from sroamd.roaming import Roamed

if TYPE_CHECKING:
    from sroamd.daemon import Daemon
    from sroamd.ubus_client import UbusClient

OBJECT_PATH = "sroamd"
ROAM_EVENT = "sroamd.roam"


def methods(daemon: "Daemon") -> dict:
    """The object's methods: none takes arguments, each returns a table."""
    def method(table):
        async def handler(args: dict) -> dict:
            return table(daemon)
        return handler, {}
    return {"status": method(status.status), "leases": method(status.leases),
            "clients": method(status.clients), "peers": method(status.peers),
            "roams": method(status.roams)}


async def publish(client: "UbusClient", daemon: "Daemon"):
    return await client.add_object(OBJECT_PATH, methods(daemon))


def roam_event(action: Roamed) -> dict:
    event = {"mac": format_mac(action.mac), "action": "arrived" if action.arrived else "left",
             "interface": action.ifname}
    if action.other_node is not None:
        event["from" if action.arrived else "to"] = action.other_node.hex()
    return event
