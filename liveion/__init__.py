"""liveion: the WHIP/WHEP SFU node."""

__version__ = "0.1.0"
