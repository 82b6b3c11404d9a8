"""liveman: the cluster manager in front of many liveion nodes."""

__version__ = "0.1.0"
