"""Bit-level readers for codec headers: MSB-first fields, Exp-Golomb, AV1 uvlc/leb128."""

from __future__ import annotations

__all__ = ["BitReader", "BitstreamError", "leb128_decode", "leb128_encode", "unescape_rbsp"]


class BitstreamError(ValueError):
    """A header or payload is truncated or malformed."""


def unescape_rbsp(nal_payload: bytes) -> bytes:
    """Drop the emulation-prevention bytes (00 00 03 -> 00 00) of an H.264/H.265 NAL unit.

    bytes.replace scans left to right without overlap, as the spec's removal does."""
    return nal_payload.replace(b"\x00\x00\x03", b"\x00\x00")


class BitReader:
    """Reads big-endian bit fields from a short header (parameter sets, frame headers).

    The bytes are held as one integer, so callers pass only the prefix they need."""

    __slots__ = ("_nbits", "_pos", "_value")

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._nbits = len(data) * 8
        self._pos = 0

    @property
    def position(self) -> int:
        return self._pos

    def u(self, n: int) -> int:
        """An n-bit unsigned field."""
        end = self._pos + n
        if end > self._nbits:
            raise BitstreamError("header truncated")
        self._pos = end
        return (self._value >> (self._nbits - end)) & ((1 << n) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def skip(self, n: int) -> None:
        if self._pos + n > self._nbits:
            raise BitstreamError("header truncated")
        self._pos += n

    def ue(self) -> int:
        """Unsigned Exp-Golomb code (H.264/H.265 ue(v))."""
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise BitstreamError("Exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        """Signed Exp-Golomb code (se(v))."""
        k = self.ue()
        return (k + 1) >> 1 if k & 1 else -(k >> 1)

    def uvlc(self) -> int:
        """AV1 uvlc()."""
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros >= 32:
                return (1 << 32) - 1
        return self.u(zeros) + (1 << zeros) - 1


def leb128_decode(buf: bytes, pos: int) -> tuple[int, int]:
    """An AV1 leb128 value at ``pos``: (value, position after it)."""
    value = 0
    end = len(buf)
    for i in range(8):
        if pos >= end:
            raise BitstreamError("leb128 truncated")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    raise BitstreamError("leb128 longer than 8 bytes")


def leb128_encode(value: int) -> bytes:
    """The shortest leb128 encoding of a non-negative integer."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
