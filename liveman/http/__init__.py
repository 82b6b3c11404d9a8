"""liveman's HTTP routers: they translate HTTP to calls on the cluster objects."""
