#!/usr/bin/env python3
"""close() with unread data: the kernel resets the connection instead of sending
a FIN (RFC 2525 2.17), and the peer's next read fails with ECONNRESET.

Run it in the lab against the echo server (it writes back what it reads):
    sudo tcplab exec echo -- python3 examples/close_unread.py
"""
import os
import socket
import time

host, port = os.environ.get("TCPLAB_PEER", "127.0.0.1:9527").rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.sendall(b"hello")
time.sleep(0.5)  # the echo arrives and waits, unread, in the receive buffer
s.close()        # unread data: RST, not FIN
print("closed without reading the echo")
