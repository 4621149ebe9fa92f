package ktrace

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// wireSeg is one TCP segment as the kernel put it on the TUN device, or as
// a Sent event says it did.
type wireSeg struct {
	seq   uint32
	len   int
	flags byte
}

// TestTUNBulkWitness: a kernel socket sends 50 MB through a TUN device to
// a peer the test plays on the device (it reads every packet the kernel
// writes, the wire, and acknowledges each with a window of 8 MB), three
// times. The kernel builds GSO packets of up to 44 segments; the TUN
// device has no TSO, so they are segmented before the device, and:
//   - every Sent event is a segment on the wire (same sequence number,
//     length, flags), none larger than the MTU, none twice;
//   - every segment on the wire is a Sent event, or lies in an Unseen
//     event's range (the kernel sent it without running the observer's
//     programs; see the package documentation), and Sent plus Unseen
//     bytes are the wire's bytes; Unseen() counts the Unseen bytes;
//   - every packet the test writes is one Received event (TUN does no GRO).
func TestTUNBulkWitness(t *testing.T) {
	for range 3 {
		bulkWitness(t, newTUNLab(t), 50<<20)
	}
}

func bulkWitness(t *testing.T, l *tunLab, total int) {
	o := openObserverConfig(t, Config{NetnsInode: l.ns.ino, NoProbe: true, PayloadBytes: 4 << 20})
	defer o.Close()
	peer := netip.MustParseAddrPort("198.18.0.2:40001")
	lAddr := ap(l.ln.Addr())
	type seen struct {
		sent     []Event
		unseen   []Event
		received int
		bytes    int // Sent and Unseen
	}
	var mu sync.Mutex
	var s seen
	dropped := map[uint64]bool{}
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for e := range o.Events() {
			mu.Lock()
			switch {
			case e.Kind == Sent && e.Local == lAddr && e.Remote == peer:
				s.sent = append(s.sent, e)
				s.bytes += e.Len
			case e.Kind == Unseen && e.Local == lAddr && e.Remote == peer:
				s.unseen = append(s.unseen, e)
				s.bytes += e.Len
			case e.Kind == Received && e.Local == lAddr && e.Remote == peer:
				s.received++
			case e.Kind == Dropped && e.Originated:
				dropped[e.Skb] = true
			}
			mu.Unlock()
		}
	}()

	written := 0
	write := func(p []byte) {
		if _, err := unix.Write(l.fd, p); err != nil {
			t.Fatal(err)
		}
		written++
	}
	const iss = 5000
	write(synOptions(segment(peer, lAddr, iss, 0, 0x02, nil, 0), 1460, 7))
	synack := l.wire(t, 5*time.Second)
	next := binary.BigEndian.Uint32(synack[24:]) + 1
	write(bigWindow(segment(peer, lAddr, iss+1, next, 0x10, nil, 0)))
	server, err := l.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 1<<20)
		for sent := 0; sent < total; sent += len(buf) {
			if _, err := server.Write(buf[:min(len(buf), total-sent)]); err != nil {
				return
			}
		}
		server.Close()
	}()
	wire := []wireSeg{{binary.BigEndian.Uint32(synack[24:]), 0, synack[33]}}
	for {
		p := l.wire(t, 10*time.Second)
		ihl := int(p[0]&0xf) * 4
		tcp := p[ihl:]
		n := int(binary.BigEndian.Uint16(p[2:])) - ihl - int(tcp[12]>>4)*4
		s := wireSeg{binary.BigEndian.Uint32(tcp[4:]), n, tcp[13]}
		wire = append(wire, s)
		if s.seq == next {
			next += uint32(n)
			if s.flags&0x01 != 0 {
				next++
			}
		}
		write(bigWindow(segment(peer, lAddr, iss+1, next, 0x10, nil, 0)))
		if s.flags&0x01 != 0 && s.seq+uint32(n)+1 == next {
			break
		}
	}
	wireBytes := 0
	for _, w := range wire {
		wireBytes += w.len
	}
	// Wait until the observer has delivered the Received event of every
	// packet written and Sent or Unseen events for as many bytes as the
	// wire carried (a hole is reported once it has stayed open for
	// unseenWait), or 5 s.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		done := s.received >= written && s.bytes >= wireBytes
		mu.Unlock()
		if done {
			break
		}
	}
	lost, err := o.Lost()
	if err != nil {
		t.Fatal(err)
	}
	unseenCount := o.Unseen()
	o.Close()
	<-collected
	kept := s.sent[:0]
	for _, e := range s.sent {
		if !dropped[e.Skb] { // dropped before the wire: not on it
			kept = append(kept, e)
		}
	}
	s.sent = kept

	sentBytes, unseenBytes := 0, 0
	onWire := map[wireSeg]int{}
	for _, w := range wire {
		onWire[w]++
	}
	for _, e := range s.sent {
		sentBytes += e.Len
		if e.SkbLen > 1500 || e.Len > 1460 {
			t.Errorf("Sent %v: an skb of %d bytes, larger than the device's MTU", e, e.SkbLen)
		}
		w := wireSeg{e.Seq, e.Len, flagByte(e.Flags)}
		if onWire[w] == 0 {
			t.Errorf("Sent %v: not on the wire (or seen twice)", e)
		}
		onWire[w]--
	}
	inUnseen := func(w wireSeg) bool {
		for _, u := range s.unseen {
			if !seqAfter(u.Seq, w.seq) && !seqAfter(w.seq+uint32(w.len), u.Seq+uint32(u.Len)) {
				return true
			}
		}
		return false
	}
	missing := 0
	for w, n := range onWire {
		for ; n > 0; n-- {
			if inUnseen(w) {
				missing++
				continue
			}
			t.Errorf("segment on the wire (seq %d len %d flags %#x) has no Sent event and no Unseen range", w.seq, w.len, w.flags)
		}
	}
	for _, u := range s.unseen {
		unseenBytes += u.Len
	}
	t.Logf("wire: %d segments, %d bytes; Sent: %d events, %d bytes; Unseen: %d events, %d bytes (%d segments); Received %d of %d written; lost %d",
		len(wire), wireBytes, len(s.sent), sentBytes, len(s.unseen), unseenBytes, missing, s.received, written, lost)
	if lost > 0 {
		t.Logf("the observer lost %d events or payloads (a loaded machine)", lost)
		return
	}
	if sentBytes+unseenBytes != wireBytes || len(s.sent)+missing != len(wire) {
		t.Errorf("Sent (%d segments, %d bytes) and Unseen (%d segments, %d bytes) do not add up to the wire (%d segments, %d bytes)",
			len(s.sent), sentBytes, missing, unseenBytes, len(wire), wireBytes)
	}
	if uint64(unseenBytes) != unseenCount {
		t.Errorf("Unseen() = %d, the Unseen events hold %d bytes", unseenCount, unseenBytes)
	}
	if s.received != written {
		t.Errorf("%d Received events for the %d packets written to the device", s.received, written)
	}
}

// flagByte turns tcpdump flag notation back into the TCP flags byte.
func flagByte(f string) byte {
	var b byte
	for _, c := range f {
		switch c {
		case 'F':
			b |= 0x01
		case 'S':
			b |= 0x02
		case 'R':
			b |= 0x04
		case 'P':
			b |= 0x08
		case '.':
			b |= 0x10
		case 'U':
			b |= 0x20
		case 'E':
			b |= 0x40
		case 'W':
			b |= 0x80
		}
	}
	return b
}

// fixChecksum recomputes the TCP checksum of IPv4 packet p (no IP options).
func fixChecksum(p []byte) []byte {
	t := p[20:]
	binary.BigEndian.PutUint16(t[16:], 0)
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(p[12:20])
	sum += unix.IPPROTO_TCP + uint32(len(t))
	add(t)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(t[16:], ^uint16(sum))
	return p
}

// bigWindow sets the window of segment p to 65535 (scaled by the SYN's
// window scale).
func bigWindow(p []byte) []byte {
	binary.BigEndian.PutUint16(p[34:], 0xffff)
	return fixChecksum(p)
}

// synOptions turns the option-less SYN p into one with options MSS mss and
// window scale wscale, and a window of 65535: segment's payload bytes
// become the options.
func synOptions(p []byte, mss uint16, wscale byte) []byte {
	src, dst := netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
	t := p[20:]
	q := segment(netip.AddrPortFrom(src, binary.BigEndian.Uint16(t[0:])), netip.AddrPortFrom(dst, binary.BigEndian.Uint16(t[2:])),
		binary.BigEndian.Uint32(t[4:]), 0, t[13], []byte{2, 4, byte(mss >> 8), byte(mss), 1, 3, 3, wscale}, 0)
	q[32] = 7 << 4 // data offset: 28 bytes of header
	return bigWindow(q)
}
