"""Hostile clients (not vidchat) against a running `vidchat listen --yes`.
Each case connects, misbehaves, and waits for the listener to hang up on it.
Usage: hostile.py PORT  -> prints one line per case and how long it took."""
import os
import pickle
import socket
import struct
import sys
import time

PORT = int(sys.argv[1])
MAGIC = b"VIDCHAT\0"


def hello(version=2, magic=MAGIC):
    # magic, protocol version, commitment, busy
    payload = magic + struct.pack("<H", version) + bytes(32) + b"\0"
    return struct.pack("<Q", len(payload)) + payload


TLS_CLIENT_HELLO = bytes.fromhex(
    "16030100a5010000a10303" + "00" * 32 + "000020c02bc02fc02cc030cca9cca8c009c013c00ac014009c009d002f0035c012000a"
    "0100005800000018001600001376696463686174746573742e6578616d706c65")


def slow(sock, data, per_byte):
    for b in data:
        sock.sendall(bytes([b]))
        time.sleep(per_byte)


CASES = [
    ("random bytes (4 KiB)", lambda s: s.sendall(os.urandom(4096))),
    ("HTTP request", lambda s: s.sendall(b"GET / HTTP/1.1\r\nHost: vidchat\r\n\r\n")),
    ("TLS ClientHello", lambda s: s.sendall(TLS_CLIENT_HELLO)),
    ("the original's pickle client", lambda s: s.sendall(
        (lambda p: struct.pack("Q", len(p)) + p)(pickle.dumps(list(range(100000)))))),
    ("length 2^63", lambda s: s.sendall(struct.pack("<Q", 1 << 63) + b"x" * 100)),
    ("length one over the Hello cap", lambda s: s.sendall(struct.pack("<Q", 4097) + b"x" * 4097)),
    ("truncated Hello", lambda s: s.sendall(hello()[:20])),
    ("wrong magic", lambda s: s.sendall(hello(magic=b"VIDCHAX\0"))),
    ("wrong version", lambda s: s.sendall(hello(version=99))),
    ("Hello, then garbage for the key exchange", lambda s: s.sendall(hello() + struct.pack("<Q", 48) + os.urandom(48))),
    ("Hello, then a key-exchange length over its cap", lambda s: s.sendall(hello() + struct.pack("<Q", 70000))),
    ("one byte per second", lambda s: slow(s, hello(), 1.0)),
    ("connect and say nothing", lambda s: None),
]


def run(name, act):
    t0 = time.time()
    with socket.create_connection(("127.0.0.1", PORT), timeout=15) as s:
        try:
            act(s)
            s.shutdown(socket.SHUT_WR) if name == "truncated Hello" else None
            while s.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            pass
    print(f"  {name:<48} hung up on after {time.time() - t0:4.1f} s", flush=True)


for name, act in CASES:
    run(name, act)
# A burst of connections that open and close at once.
for _ in range(20):
    socket.create_connection(("127.0.0.1", PORT)).close()
print(f"  {'20 connections opened and closed at once':<48} done", flush=True)
print(len(CASES) + 20)
