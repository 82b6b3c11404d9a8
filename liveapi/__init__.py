"""What liveion and liveman say to each other and to clients: the JSON both servers speak.

liveion produces these shapes, liveman parses and merges them; both import them from here
so the two servers cannot drift apart.
"""
