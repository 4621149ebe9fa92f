# bulk.py N: connect to $TCPLAB_PEER, send N bytes, half-close, wait for
# the peer's close, and print how many bytes send() took: a long run for
# tcplab exec (README, "Long runs"; cmd/tcplab/longrun_linux_test.go holds
# the trace's byte counts to that number).
import os
import socket
import sys

host, port = os.environ["TCPLAB_PEER"].rsplit(":", 1)
total = int(sys.argv[1])
s = socket.create_connection((host, int(port)))
buf = b"x" * (1 << 20)
sent = 0
while sent < total:
    sent += s.send(buf[: min(len(buf), total - sent)])
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
print(sent)
