"""liveman: the cluster manager in front of many liveion nodes."""
