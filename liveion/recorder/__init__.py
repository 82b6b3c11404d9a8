"""Recording streams to fragmented MP4 + DASH (sans-IO cores) and to storage (glue)."""
