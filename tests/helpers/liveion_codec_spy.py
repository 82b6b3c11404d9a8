"""Run liveion with every aiortc encoder and decoder class instrumented.

Each construction appends the class name to the file named by LIVEION_CODEC_SPY, so a test
can prove the SFU never decodes or encodes: it patches the classes themselves, which no
import alias can bypass.
"""

from __future__ import annotations

import os
import sys

from aiortc.codecs import g711, g722, h264, opus, vpx

CODEC_CLASSES = [
    h264.H264Decoder, h264.H264Encoder, vpx.Vp8Decoder, vpx.Vp8Encoder,
    opus.OpusDecoder, opus.OpusEncoder, g722.G722Decoder, g722.G722Encoder,
    g711.PcmaDecoder, g711.PcmaEncoder, g711.PcmuDecoder, g711.PcmuEncoder,
]


def instrument(path: str) -> None:
    for cls in CODEC_CLASSES:
        original = cls.__init__

        def spying_init(self: object, *args: object, __original=original, __name=cls.__name__,
                        **kwargs: object) -> None:
            with open(path, "a") as log:
                log.write(__name + "\n")
            __original(self, *args, **kwargs)

        cls.__init__ = spying_init  # type: ignore[method-assign]


if __name__ == "__main__":
    instrument(os.environ["LIVEION_CODEC_SPY"])
    from liveion.__main__ import main

    sys.exit(main(sys.argv[1:]))
