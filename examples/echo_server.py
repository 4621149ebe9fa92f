#!/usr/bin/env python3
"""A one-connection echo server, for tcplab exec --side server: it listens on
$TCPLAB_LISTEN, writes back what it reads, and closes at EOF.

    sudo tcplab exec --side server examples/echo_client.lab -- python3 examples/echo_server.py
"""
import os
import socket

host, port = os.environ.get("TCPLAB_LISTEN", "127.0.0.1:8080").rsplit(":", 1)
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((host, int(port)))
ls.listen()
c, peer = ls.accept()
while True:
    data = c.recv(4096)
    if not data:
        break
    c.sendall(data)
c.close()
ls.close()
print("echoed for", peer[0])
