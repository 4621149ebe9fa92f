#!/usr/bin/env python3
"""An HTTP client that POSTs 1 MiB, as many do: the whole body first, then
read the answer. Against a server that answers without reading the body and
closes (tcplab's http:noread), the send fails midway (EPIPE or ECONNRESET),
and what it can still read is whatever arrived before the reset.

    sudo tcplab exec http:noread -- python3 examples/bigpost.py
    sudo tcplab exec http -- python3 examples/bigpost.py        # read: 200, no RST
"""
import os
import socket

host, port = os.environ.get("TCPLAB_PEER", "127.0.0.1:9527").rsplit(":", 1)
s = socket.create_connection((host, int(port)))
body = b"x" * (1 << 20)
s.sendall(b"POST /upload HTTP/1.1\r\nHost: lab\r\nContent-Length: %d\r\n\r\n" % len(body))
try:
    s.sendall(body)
    print("sent the whole body")
except OSError as e:
    print("sending the body failed:", e)
try:
    answer = s.recv(4096)
    print("answer:", answer.split(b"\r\n")[0].decode() if answer else "none (EOF)")
except OSError as e:
    print("reading the answer failed:", e)
s.close()
