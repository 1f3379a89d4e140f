#!/usr/bin/env python3
"""DTLS 1.2 handshake flood for test_flood.sh, as fast as this one process
goes (run it at nice 19 so that it shares the cores fairly).

usage: flood.py HOST PORT SECONDS NSOURCES [SOCKETS_PER_SOURCE]

Two kinds of ClientHello (RFC 6347 §4.2.1), interleaved:
  spoofed       from one of 256 addresses 127.1.0.x whose HelloVerifyRequest
                is never read: what forged source addresses cost the server
                (stateless work only);
  cookie-valid  from NSOURCES addresses 127.2.x.y (SOCKETS_PER_SOURCE ports
                each, default 1): the HelloVerifyRequest's cookie goes back
                in a second ClientHello, which makes the server hold a
                handshake, then abandoned (one in flight per socket at a
                time, the next as soon as the cookie is back). An attacking
                host can do this only from the addresses it receives at.
Prints one line: spoofed=N cookie_valid=M
"""
import os
import select
import socket
import struct
import sys
import time

PSK_SUITES = bytes.fromhex("c0a800a8")  # PSK-AES128-CCM-8, PSK-AES128-GCM-SHA256
# What tether-bench's wolfSSL client offers: ec_point_formats, supported_groups,
# encrypt_then_mac, connection_id (RFC 9146, empty), extended_master_secret.
EXTENSIONS = bytes.fromhex("000b00020100000a000c000a00190018001700150100"
                           "00160000003600010000170000")


def client_hello(rnd, cookie, seq):
    body = (b"\xfe\xfd" + rnd + b"\x00" + bytes([len(cookie)]) + cookie +
            struct.pack("!H", len(PSK_SUITES)) + PSK_SUITES + b"\x01\x00" +
            struct.pack("!H", len(EXTENSIONS)) + EXTENSIONS)
    hs = (b"\x01" + struct.pack("!I", len(body))[1:] + struct.pack("!H", seq) + b"\x00\x00\x00" +
          struct.pack("!I", len(body))[1:] + body)
    return b"\x16\xfe\xfd\x00\x00" + struct.pack("!Q", seq)[2:] + struct.pack("!H", len(hs)) + hs


def hvr_cookie(d):
    # record (13) | handshake header (12): type 3 | server_version (2) | cookie
    if len(d) < 28 or d[0] != 22 or d[13] != 3:
        return None
    n = d[27]
    return d[28:28 + n] if len(d) >= 28 + n else None


def main():
    host, port, secs, nsrc = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    per = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    dst = (host, port)
    spoof = []
    for i in range(256):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.1.0.%d" % (i % 254 + 1), 0))
        s.setblocking(False)
        spoof.append(s)
    ep = select.epoll()
    socks, rnd = {}, {}
    for i in range(nsrc * per):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.2.%d.%d" % (i // per // 250, i // per % 250 + 1), 0))
        s.setblocking(False)
        socks[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLIN)
    n_spoof = n_valid = 0
    spoof_hello = client_hello(os.urandom(32), b"", 0)

    def start(fd):
        r = os.urandom(32)
        rnd[fd] = r
        try:
            socks[fd].sendto(client_hello(r, b"", 0), dst)
        except BlockingIOError:
            pass

    for fd in socks:
        start(fd)
    end = time.time() + secs
    k = 0
    last_kick = time.time()
    while time.time() < end:
        for _ in range(8):
            try:
                spoof[k % 256].sendto(spoof_hello, dst)
                n_spoof += 1
            except BlockingIOError:
                pass
            k += 1
        for fd, _ in ep.poll(0):
            s = socks[fd]
            while True:
                try:
                    d = s.recv(2048)
                except BlockingIOError:
                    break
                c = hvr_cookie(d)
                if c is None:
                    continue  # the server's flight for a held handshake: abandoned
                try:
                    s.sendto(client_hello(rnd[fd], c, 1), dst)
                    n_valid += 1
                except BlockingIOError:
                    pass
                start(fd)
        if time.time() - last_kick > 1.0:  # hellos the server dropped: start again
            last_kick = time.time()
            for fd in socks:
                start(fd)
    print("spoofed=%d cookie_valid=%d" % (n_spoof, n_valid))


main()
