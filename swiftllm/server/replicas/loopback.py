"""Keeping a local Ray cluster on the loopback interface.

Ray binds its processes (GCS, raylets, workers) to the address it takes for the node's, found from the default
route on Linux; with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` it takes 127.0.0.1, as it does on a laptop, and no
Ray traffic leaves the loopback interface. Ray reads the variable when it is first imported, so call
``keep_ray_on_loopback`` before anything imports ``ray``. Not for joining a cluster of several machines.
"""
import os
import sys

RAY_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def keep_ray_on_loopback() -> None:
    """Raises ``RuntimeError`` if ``ray`` was imported already with the switch not set."""
    os.environ.setdefault(RAY_CLUSTER_SWITCH, "0")
    if "ray" in sys.modules and ray_binds_to_node_address():
        raise RuntimeError("ray was imported before keep_ray_on_loopback(): its processes would bind to the node's "
                           f"network address; set {RAY_CLUSTER_SWITCH}=0 before importing ray")


def ray_binds_to_node_address() -> bool:
    from ray._private import ray_constants
    return ray_constants.ENABLE_RAY_CLUSTER
