# keepalive.py: connects to $TCPLAB_PEER, sends "hi", then waits with
# TCP keepalive on (1 s idle, 1 s between probes, 2 probes): when the
# peer stops answering, the kernel gives up and resets the connection.
import os, socket, sys

host, port = os.environ["TCPLAB_PEER"].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
s.sendall(b"hi")
try:
    data = s.recv(100)
    print("recv:", data)
except OSError as e:
    print("recv failed:", e.strerror)
s.close()
