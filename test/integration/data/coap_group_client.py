#!/usr/bin/env python3
"""A minimal plain-CoAP client (RFC 7252 over UDP) for group requests
through tether (draft-ietf-core-groupcomm-proxy): it sends one request and
prints every response matching its token, one JSON line each, until the
listening time is over. libcoap's coap-client stops at the first response,
and a group request brings many.

usage: coap_group_client.py HOST PORT --host GROUP --path temp
                            [--timeout T'] [--no-timeout] [--listen S]
                            [--reply-from 248] [--multicast-timeout 2]
                            [--opt NUM=HEX ...]
Each line: {"code": "2.05", "type": "NON", "reply_from": "dev3",
            "t": 0.123, "payload": "...", "options": {"2": ""}}
"""
import argparse
import json
import os
import socket
import struct
import time


def opt_bytes(num, val, last):
    delta = num - last
    parts = []
    def nib(x):
        if x < 13:
            return x, b""
        if x < 269:
            return 13, bytes([x - 13])
        return 14, struct.pack(">H", x - 269)
    dn, dx = nib(delta)
    ln, lx = nib(len(val))
    return bytes([dn << 4 | ln]) + dx + lx + val


def encode(mtype, code, mid, token, opts, payload=b""):
    out = bytes([0x40 | mtype << 4 | len(token), code]) + struct.pack(">H", mid) + token
    last = 0
    for num, val in sorted(opts, key=lambda o: o[0]):
        out += opt_bytes(num, val, last)
        last = num
    if payload:
        out += b"\xff" + payload
    return out


def decode(buf):
    if len(buf) < 4 or buf[0] >> 6 != 1:
        return None
    mtype, tkl = buf[0] >> 4 & 3, buf[0] & 15
    code, mid = buf[1], struct.unpack(">H", buf[2:4])[0]
    token, i, num, opts = buf[4:4 + tkl], 4 + tkl, 0, []
    payload = b""
    while i < len(buf):
        if buf[i] == 0xFF:
            payload = buf[i + 1:]
            break
        d, l = buf[i] >> 4, buf[i] & 15
        i += 1
        def ext(x, i):
            if x == 13:
                return buf[i] + 13, i + 1
            if x == 14:
                return struct.unpack(">H", buf[i:i + 2])[0] + 269, i + 2
            return x, i
        d, i = ext(d, i)
        l, i = ext(l, i)
        num += d
        opts.append((num, buf[i:i + l]))
        i += l
    return mtype, code, mid, token, opts, payload


def cbor_cri_host(v):
    """[-1, "name"] -> name (the CRI tether puts in Reply-From)."""
    if len(v) < 3 or v[0] != 0x82 or v[1] != 0x20:
        return None
    if 0x60 <= v[2] < 0x78:
        n, o = v[2] - 0x60, 3
    elif v[2] == 0x78:
        n, o = v[3], 4
    else:
        return None
    return v[o:o + n].decode("utf-8", "replace")


def uint(x):
    return b"" if x == 0 else x.to_bytes((x.bit_length() + 7) // 8, "big")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("port", type=int)
    ap.add_argument("--host", required=True)
    ap.add_argument("--path", default="temp")
    ap.add_argument("--method", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=2, help="Multicast-Timeout T' (s)")
    ap.add_argument("--no-timeout", action="store_true", help="send no Multicast-Timeout")
    ap.add_argument("--listen", type=float, default=None, help="seconds to collect (T'+1)")
    ap.add_argument("--non", action="store_true", help="send the request as NON")
    ap.add_argument("--multicast-timeout", type=int, default=2)
    ap.add_argument("--reply-from", type=int, default=248)
    ap.add_argument("--opt", action="append", default=[], metavar="NUM=HEX",
                    help="one more request option (repeatable), e.g. a Group-ETag 24=0011...")
    a = ap.parse_args()
    token = os.urandom(4)
    mid = struct.unpack(">H", os.urandom(2))[0]
    opts = [(3, a.host.encode())] + [(11, s.encode()) for s in a.path.split("/") if s]
    if not a.no_timeout:
        opts.append((a.multicast_timeout, uint(a.timeout)))
    for o in a.opt:
        num, _, val = o.partition("=")
        opts.append((int(num), bytes.fromhex(val)))
    req = encode(1 if a.non else 0, a.method, mid, token, opts)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((a.server, a.port))
    start = time.monotonic()
    s.send(req)
    end = start + (a.listen if a.listen is not None else a.timeout + 1)
    acked = False
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            buf = s.recv(2048)
        except socket.timeout:
            break
        m = decode(buf)
        if not m:
            continue
        mtype, code, rmid, rtok, ropts, payload = m
        if mtype == 2 and code == 0 and rmid == mid:
            acked = True
            continue
        if mtype == 0:  # a CON response: acknowledge it
            s.send(encode(2, 0, rmid, b"", []))
        if rtok != token or code < 64:
            continue
        rf = [cbor_cri_host(v) for n, v in ropts if n == a.reply_from]
        print(json.dumps({
            "code": "%d.%02d" % (code >> 5, code & 31),
            "type": ["CON", "NON", "ACK", "RST"][mtype],
            "reply_from": rf[0] if rf else None,
            "t": round(time.monotonic() - start, 3),
            "payload": payload.decode("utf-8", "replace"),
            "options": {str(n): v.hex() for n, v in ropts},
            "acked": acked,
        }), flush=True)


if __name__ == "__main__":
    main()
