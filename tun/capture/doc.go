// Package capture provides an independent witness of the lab's wire: an
// AF_PACKET capture of the kernel interfaces of a tun.Lab, opened inside
// the lab's network namespace and written as pcapng, and a reader that
// parses such a file back into WirePackets for tests.
//
// # What it sees
//
// The socket (AF_PACKET, SOCK_DGRAM, ETH_P_ALL) is created by Start on a
// thread inside the lab namespace, so it sees every packet of every device
// there and nothing else on the machine. It exists before Start returns,
// so a capture started right after tun.New sees the first SYN; Close reads
// on until the socket has been quiet for Config.Linger, so a capture closed
// after the lab (and its teardown) sees the last RST.
//
// Each gVisor-to-gVisor packet is seen twice: once as it comes out of the
// sender's TUN device into the kernel (packet type PACKET_HOST: the
// sender's copy), and once as the kernel forwards it into the receiver's
// TUN device (PACKET_OUTGOING: the receiver's copy). A packet between a
// gVisor host and a kernel socket is seen once, on the gVisor host's
// device. The packet type and the interface index of every packet are kept.
//
// # File format
//
// The file is pcapng (written with github.com/gopacket/gopacket/pcapgo):
// one interface description block per device of the namespace, named after
// it (tcl-client, tcl-server), link type LINUX_SLL2, so each packet carries
// a 20-byte cooked header with its protocol, interface index and packet
// type; the enhanced packet block's flags say inbound (PACKET_HOST) or
// outbound (PACKET_OUTGOING) as well. Timestamps are the kernel's receive
// times (SO_TIMESTAMPNS), in nanoseconds. Wireshark, tshark and tcpdump -r
// read it; Read parses it back.
//
// # Cost
//
// One socket with an 8 MiB receive buffer and one goroutine, blocked in
// recvmsg, that copies each packet (up to Config.SnapLen bytes) into a
// buffered writer. Linux only; elsewhere Start returns tun.ErrUnsupported.
package capture
