#!/usr/bin/env python3
"""The article's half-close, in a real program: write a request, shutdown(SHUT_WR)
(a FIN: "no more from me"), and still read the answer to the end.

Run it in the lab against the article's server (it reads, works 5 s, answers):
    sudo tcplab exec article -- python3 examples/halfclose.py
"""
import os
import socket
import sys

host, port = os.environ.get("TCPLAB_PEER", "127.0.0.1:9527").rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.sendall(b"aaa")
s.shutdown(socket.SHUT_WR)  # FIN now; the socket can still read
answer = b""
while True:
    chunk = s.recv(4096)
    if not chunk:  # the server's FIN: end of the answer
        break
    answer += chunk
s.close()
print(answer.decode())
sys.exit(0 if answer == b"Hi, aaa" else 1)
