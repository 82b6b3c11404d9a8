"""Data-channel fan-out: a stream's "room broadcast" (Live777's DataChannel forward).

A message the publisher sends on any of its data channels goes to every subscriber with an
open data channel; a message from a subscriber goes to the publisher. Subscribers do not
hear each other, as in Live777. Text stays text and binary stays binary.

Channels are matched by label: a message arrives on the receiver's channel with the same
label, or on its first open channel when it has none of that name. So the common case (one
channel on each side, whatever its label) just works, and a page with several channels
keeps them apart. Negotiated (out-of-band, fixed id) channels are not relayed: the SFU
only learns of channels the peers announce in-band.

Messages are not queued: a subscriber that opens its channel later receives what the
publisher sends from then on.
"""

from __future__ import annotations

from .stream import Role, Session, Stream


def relay(stream: Stream, sender: Session, label: str, data: str | bytes) -> int:
    """Deliver one message `sender` sent on its channel `label`; returns how many peers got it.

    Only the stream's current publisher and attached subscribers are relayed: a session
    that was replaced or detached is silent.
    """
    if sender.role is Role.PUBLISH:
        if stream.publisher is not sender:
            return 0
        delivered = 0
        for subscriber in list(stream.subscribers.values()):
            if subscriber.peer.send_message(label, data):
                delivered += 1
        return delivered
    publisher = stream.publisher
    if stream.subscribers.get(sender.id) is not sender or publisher is None:
        return 0
    return 1 if publisher.peer.send_message(label, data) else 0
