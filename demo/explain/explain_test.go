package explain

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// wpkt is a packet of a synthetic capture.
type wpkt struct {
	fromServer bool
	flags      uint8
	seq, ack   uint32 // relative to the sender's / receiver's ISN
	win        uint16
	len        int
	ttl        uint8  // 0 means 64
	wscale     int8   // on a SYN; 0 means none
	id         uint16 // IPv4 ID; 0 means the low bits of seq
	dt         time.Duration
}

// conv is a synthetic conversation between a client and a server.
type conv struct {
	client, server netip.AddrPort
	cisn, sisn     uint32
	pkts           []wpkt
}

var (
	cAddr = netip.MustParseAddrPort("10.0.0.1:40000")
	sAddr = netip.MustParseAddrPort("10.0.0.2:80")
	c6    = netip.MustParseAddrPort("[2001:db8::1]:40000")
	s6    = netip.MustParseAddrPort("[2001:db8::2]:80")
)

// link is how packets are framed.
type link int

const (
	linkEthernet link = iota
	linkSLL
	linkSLL2
	linkRaw
)

// frame serializes one packet of c.
func (c conv) frame(t testing.TB, p wpkt, lt link, ttlDelta uint8) []byte {
	t.Helper()
	src, dst := c.client, c.server
	sisn, risn := c.cisn, c.sisn
	if p.fromServer {
		src, dst, sisn, risn = dst, src, risn, sisn
	}
	ttl := p.ttl
	if ttl == 0 {
		ttl = 64
	}
	ttl -= ttlDelta
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: sisn + p.seq, Window: p.win,
		FIN: p.flags&flagFIN != 0, SYN: p.flags&flagSYN != 0, RST: p.flags&flagRST != 0, PSH: p.flags&flagPSH != 0, ACK: p.flags&flagACK != 0}
	if tcp.ACK {
		tcp.Ack = risn + p.ack
	}
	if p.wscale > 0 {
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{byte(p.wscale)}}}
	}
	var ls []gopacket.SerializableLayer
	var netl gopacket.NetworkLayer
	ethType := layers.EthernetTypeIPv4
	if src.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, TTL: ttl, Protocol: layers.IPProtocolTCP, SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice()), Id: cmp.Or(p.id, uint16(p.seq)), Flags: layers.IPv4DontFragment}
		netl = ip
		ls = append(ls, ip)
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: ttl, NextHeader: layers.IPProtocolTCP, SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
		netl = ip
		ls = append(ls, ip)
		ethType = layers.EthernetTypeIPv6
	}
	if err := tcp.SetNetworkLayerForChecksum(netl); err != nil {
		t.Fatal(err)
	}
	ls = append(ls, tcp, gopacket.Payload(bytes.Repeat([]byte{'a'}, p.len)))
	switch lt {
	case linkEthernet:
		ls = append([]gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: ethType}}, ls...)
	case linkSLL:
		hdr := make([]byte, 16)
		hdr[1] = 4 // outgoing
		hdr[3] = 1 // ARPHRD_ETHER
		hdr[14], hdr[15] = byte(ethType>>8), byte(ethType)
		ls = append([]gopacket.SerializableLayer{gopacket.Payload(hdr)}, ls...)
	case linkSLL2:
		hdr := make([]byte, 20)
		hdr[0], hdr[1] = byte(ethType>>8), byte(ethType)
		hdr[7] = 1
		hdr[9] = 1
		ls = append([]gopacket.SerializableLayer{gopacket.Payload(hdr)}, ls...)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// pcap writes the conversations, one after the other, as a pcap file.
func pcapOf(t testing.TB, lt link, cs ...conv) []byte {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	lts := map[link]layers.LinkType{linkEthernet: layers.LinkTypeEthernet, linkSLL: layers.LinkTypeLinuxSLL, linkSLL2: layers.LinkTypeLinuxSLL2, linkRaw: layers.LinkTypeRaw}
	if err := w.WriteFileHeader(65536, lts[lt]); err != nil {
		t.Fatal(err)
	}
	now := t0
	for _, c := range cs {
		for _, p := range c.pkts {
			now = now.Add(p.dt + time.Millisecond)
			data := c.frame(t, p, lt, 0)
			if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: now, CaptureLength: len(data), Length: len(data)}, data); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b.Bytes()
}

// pcapngTwice writes each packet twice, on two interfaces, the second copy
// one TTL lower (a router's two sides).
func pcapngTwice(t testing.TB, c conv) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriter(&b, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddInterface(pcapgo.NgInterface{Name: "eth1", LinkType: layers.LinkTypeEthernet, SnapLength: 65536}); err != nil {
		t.Fatal(err)
	}
	now := t0
	for _, p := range c.pkts {
		now = now.Add(p.dt + time.Millisecond)
		for i := 0; i < 2; i++ {
			data := c.frame(t, p, linkEthernet, uint8(i))
			if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: now.Add(time.Duration(i) * 10 * time.Microsecond), CaptureLength: len(data), Length: len(data), InterfaceIndex: i}, data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

const (
	fS  = flagSYN
	fSA = flagSYN | flagACK
	fA  = flagACK
	fPA = flagPSH | flagACK
	fFA = flagFIN | flagACK
	fR  = flagRST
	fRA = flagRST | flagACK
)

// handshake is the three-way handshake, window scaling 7 on both sides.
func handshake() []wpkt {
	return []wpkt{
		{flags: fS, seq: 0, win: 29184, wscale: 7},
		{fromServer: true, flags: fSA, seq: 0, ack: 1, win: 29184, wscale: 7},
		{flags: fA, seq: 1, ack: 1, win: 228},
	}
}

// The article's experiments and the catalogue's simple cases, as a wire
// would carry them.
var (
	closeConv = conv{client: cAddr, server: sAddr, cisn: 1000, sisn: 5000, pkts: append(handshake(),
		wpkt{flags: fPA, seq: 1, ack: 1, win: 228, len: 3},
		wpkt{fromServer: true, flags: fA, seq: 1, ack: 4, win: 227},
		wpkt{flags: fFA, seq: 4, ack: 1, win: 228},
		wpkt{fromServer: true, flags: fA, seq: 1, ack: 5, win: 227},
		wpkt{fromServer: true, flags: fPA, seq: 1, ack: 5, win: 228, len: 7, dt: 5 * time.Second},
		wpkt{flags: fRA, seq: 5, ack: 1},
	)}
	shutdownConv = conv{client: cAddr, server: sAddr, cisn: 1000, sisn: 5000, pkts: append(handshake(),
		wpkt{flags: fPA, seq: 1, ack: 1, win: 228, len: 3},
		wpkt{fromServer: true, flags: fA, seq: 1, ack: 4, win: 227},
		wpkt{flags: fFA, seq: 4, ack: 1, win: 228},
		wpkt{fromServer: true, flags: fA, seq: 1, ack: 5, win: 227},
		wpkt{fromServer: true, flags: fPA, seq: 1, ack: 5, win: 228, len: 7, dt: 5 * time.Second},
		wpkt{flags: fA, seq: 5, ack: 8, win: 228},
		wpkt{fromServer: true, flags: fFA, seq: 8, ack: 5, win: 228},
		wpkt{flags: fA, seq: 5, ack: 9, win: 228},
	)}
	refusedConv = conv{client: cAddr, server: sAddr, cisn: 1000, sisn: 0, pkts: []wpkt{
		{flags: fS, seq: 0, win: 29184},
		{fromServer: true, flags: fRA, seq: 0, ack: 1},
	}}
	middleboxConv = conv{client: cAddr, server: sAddr, cisn: 1000, sisn: 5000, pkts: append(handshake(),
		wpkt{flags: fPA, seq: 1, ack: 1, win: 228, len: 100},
		wpkt{fromServer: true, flags: fRA, seq: 1, ack: 101, ttl: 50},
	)}
	idConv = conv{client: cAddr, server: sAddr, cisn: 1000, sisn: 5000, pkts: []wpkt{
		{flags: fS, seq: 0, win: 29184, wscale: 7, id: 100},
		{fromServer: true, flags: fSA, seq: 0, ack: 1, win: 29184, wscale: 7, id: 7000},
		{flags: fA, seq: 1, ack: 1, win: 228, id: 101},
		{flags: fPA, seq: 1, ack: 1, win: 228, len: 100, id: 102},
		{fromServer: true, flags: fA, seq: 1, ack: 101, win: 227, id: 7001},
		{fromServer: true, flags: fPA, seq: 1, ack: 101, win: 227, len: 10, id: 7002},
		{flags: fA, seq: 101, ack: 11, win: 228, id: 103},
		{fromServer: true, flags: fA, seq: 11, ack: 101, win: 228, id: 7003},
		{fromServer: true, flags: fRA, seq: 11, ack: 101, id: 31337},
	}}
	// keepaliveConv: after two hours of silence the client probes three
	// times, 75 s apart, with seq one below its next; nobody answers; it
	// resets.
	keepaliveConv = conv{client: cAddr, server: sAddr, cisn: 1000, sisn: 5000, pkts: append(handshake(),
		wpkt{flags: fPA, seq: 1, ack: 1, win: 228, len: 3},
		wpkt{fromServer: true, flags: fA, seq: 1, ack: 4, win: 228},
		wpkt{flags: fA, seq: 3, ack: 1, win: 228, dt: 7200 * time.Second},
		wpkt{flags: fA, seq: 3, ack: 1, win: 228, dt: 75 * time.Second},
		wpkt{flags: fA, seq: 3, ack: 1, win: 228, dt: 75 * time.Second},
		wpkt{flags: fRA, seq: 4, ack: 1, dt: 75 * time.Second},
	)}
	lostFINConv = conv{client: cAddr, server: sAddr, cisn: 1000, sisn: 5000, pkts: append(handshake(),
		wpkt{flags: fFA, seq: 1, ack: 1, win: 228},
		wpkt{flags: fFA, seq: 1, ack: 1, win: 228, dt: 200 * time.Millisecond},
		wpkt{fromServer: true, flags: fA, seq: 1, ack: 2, win: 228},
	)}
)

// analyze explains data and returns its connections.
func analyze(t *testing.T, data []byte) ([]*Conn, Summary) {
	t.Helper()
	var cs []*Conn
	sum, err := Analyze("test.pcap", bytes.NewReader(data), true, func(c *Conn) { cs = append(cs, c) })
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	return cs, sum
}

// verdict is a finding in short: "RST client data after close() high".
func verdict(f *Finding) string { return f.Kind + " " + f.From + " " + f.Class + " " + f.Confidence }

func verdicts(cs []*Conn) []string {
	var out []string
	for _, c := range cs {
		for _, f := range c.Findings {
			out = append(out, verdict(f))
		}
	}
	return out
}

func TestRules(t *testing.T) {
	for _, tc := range []struct {
		name     string
		conv     conv
		want     []string
		teardown string
		zeek     string
	}{
		{"close", closeConv, []string{"FIN client close() medium", "RST client data after close() high"}, TeardownHalfReset, "RSTO"},
		{"shutdown", shutdownConv, []string{"FIN client SHUT_WR medium", "FIN server close() medium"}, TeardownClean, "SF"},
		{"refused", refusedConv, []string{"RST server no connection high"}, TeardownResetOnSYN, "REJ"},
		{"middlebox", middleboxConv, []string{"RST server middlebox medium"}, TeardownAbortive, "RSTR"},
		{"middlebox by IP ID", idConv, []string{"RST server middlebox medium"}, TeardownAbortive, "RSTR"},
		{"timeout", conv{client: cAddr, server: sAddr, cisn: 1000, sisn: 5000, pkts: append(handshake(),
			wpkt{flags: fPA, seq: 1, ack: 1, win: 228, len: 100},
			wpkt{flags: fPA, seq: 1, ack: 1, win: 228, len: 100, dt: 200 * time.Millisecond},
			wpkt{flags: fPA, seq: 1, ack: 1, win: 228, len: 100, dt: 400 * time.Millisecond},
			wpkt{flags: fPA, seq: 1, ack: 1, win: 228, len: 100, dt: 800 * time.Millisecond},
			wpkt{flags: fRA, seq: 101, ack: 1, dt: 1600 * time.Millisecond},
		)}, []string{"RST client timeout medium"}, TeardownAbortive, "RSTO"},
		{"keepalive", keepaliveConv, []string{"RST client keepalive timeout medium"}, TeardownAbortive, "RSTO"},
		{"idle", conv{client: cAddr, server: sAddr, cisn: 1000, sisn: 5000, pkts: append(handshake(),
			wpkt{flags: fPA, seq: 1, ack: 1, win: 228, len: 3},
			wpkt{fromServer: true, flags: fPA, seq: 1, ack: 4, win: 228, len: 5},
			wpkt{flags: fA, seq: 4, ack: 6, win: 228},
			wpkt{fromServer: true, flags: fRA, seq: 6, ack: 4, dt: 350 * time.Second},
		)}, []string{"RST server idle timeout medium"}, TeardownAbortive, "RSTR"},
		{"probe finds it gone", conv{client: cAddr, server: sAddr, cisn: 1000, sisn: 5000, pkts: append(handshake(),
			wpkt{flags: fPA, seq: 1, ack: 1, win: 228, len: 3},
			wpkt{fromServer: true, flags: fA, seq: 1, ack: 4, win: 228},
			wpkt{flags: fA, seq: 3, ack: 1, win: 228, dt: 7200 * time.Second},
			wpkt{fromServer: true, flags: fR, seq: 1},
		)}, []string{"RST server connection gone medium"}, TeardownAbortive, "RSTR"},
		{"lost FIN", lostFINConv, []string{"FIN client close() low", "FIN client retransmitted FIN high"}, TeardownUnansweredF, "S2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, _ := analyze(t, pcapOf(t, linkEthernet, tc.conv))
			if len(cs) != 1 {
				t.Fatalf("%d connections, want 1", len(cs))
			}
			if got := verdicts(cs); strings.Join(got, "; ") != strings.Join(tc.want, "; ") {
				t.Errorf("findings:\n got %q\nwant %q", got, tc.want)
			}
			if got := cs[0].Teardown(); got != tc.teardown {
				t.Errorf("Teardown() = %q, want %q", got, tc.teardown)
			}
			if got := cs[0].Zeek(); got != tc.zeek {
				t.Errorf("Zeek() = %q, want %q", got, tc.zeek)
			}
		})
	}
}

// The RST of the close experiment cites the FIN, its ACK and the data it
// answers, and the states are the ones tcplab's trace shows.
func TestCloseEvidenceAndStates(t *testing.T) {
	cs, _ := analyze(t, pcapOf(t, linkEthernet, closeConv))
	f := cs[0].Findings[1]
	if got, want := refs(f.Evidence), "#6, #7, #8"; got != want {
		t.Errorf("evidence %s, want %s", got, want)
	}
	if f.State != "FIN-WAIT-2" || f.PeerState != "CLOSE-WAIT" {
		t.Errorf("states before the RST: client %s, server %s; want FIN-WAIT-2, CLOSE-WAIT", f.State, f.PeerState)
	}
	if !strings.HasPrefix(f.Reason, "data arrived in FIN-WAIT-2 after close()") {
		t.Errorf("reason %q", f.Reason)
	}
	l := cs[0].Ledgers()
	if l[0].Sent != 3 || l[0].Acked != 3 || l[1].Sent != 7 || l[1].Acked != 0 {
		t.Errorf("ledgers %+v, want client 3 sent 3 acked, server 7 sent 0 acked", l)
	}
	cl, sv := cs[0].States()
	if cl != "CLOSED" || sv != "CLOSED" {
		t.Errorf("end states %s, %s", cl, sv)
	}
}

// The same conversation reads the same in every framing explain supports,
// gzip'd or not, over IPv4 and IPv6.
func TestFormats(t *testing.T) {
	want := strings.Join(verdicts(func() []*Conn { cs, _ := analyze(t, pcapOf(t, linkEthernet, closeConv)); return cs }()), "; ")
	v6 := closeConv
	v6.client, v6.server = c6, s6
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(pcapOf(t, linkEthernet, closeConv))
	zw.Close()
	for name, data := range map[string][]byte{
		"sll":         pcapOf(t, linkSLL, closeConv),
		"sll2":        pcapOf(t, linkSLL2, closeConv),
		"raw":         pcapOf(t, linkRaw, closeConv),
		"ipv6":        pcapOf(t, linkEthernet, v6),
		"raw ipv6":    pcapOf(t, linkRaw, v6),
		"gzip":        gz.Bytes(),
		"pcapng x2":   pcapngTwice(t, closeConv),
		"ipv6 pcapng": pcapngTwice(t, v6),
	} {
		t.Run(name, func(t *testing.T) {
			cs, sum := analyze(t, data)
			if len(cs) != 1 {
				t.Fatalf("%d connections, want 1", len(cs))
			}
			if got := strings.Join(verdicts(cs), "; "); got != want {
				t.Errorf("findings %q, want %q", got, want)
			}
			if strings.HasPrefix(name, "pcapng") || strings.HasSuffix(name, "pcapng") {
				if sum.Copies != len(closeConv.pkts) || cs[0].Packets != len(closeConv.pkts) {
					t.Errorf("copies %d, packets %d; want %d each", sum.Copies, cs[0].Packets, len(closeConv.pkts))
				}
			}
		})
	}
}

// Several connections, one after the other on the same 4-tuple: a SYN
// starts a new one.
func TestConnectionsAndFilters(t *testing.T) {
	data := pcapOf(t, linkEthernet, closeConv, shutdownConv, refusedConv)
	cs, sum := analyze(t, data)
	if len(cs) != 3 || sum.Conns != 3 {
		t.Fatalf("%d connections, want 3", len(cs))
	}
	if sum.RST[ClassDataAfter] != 1 || sum.RST[ClassNoConnection] != 1 || sum.Teardown[TeardownClean] != 1 {
		t.Errorf("summary %+v", sum)
	}
	var out bytes.Buffer
	if _, err := Run("x.pcap", bytes.NewReader(data), &out, Options{OnlyResets: true}); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "conn 1 ") || strings.Contains(s, "conn 2 ") || !strings.Contains(s, "conn 3 ") || strings.Contains(s, "reason: close(): the application") {
		t.Errorf("--only resets:\n%s", s)
	}
	out.Reset()
	if _, err := Run("x.pcap", bytes.NewReader(data), &out, Options{Conn: "2", Format: "json"}); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var j struct {
			Type string
			Conn int
		}
		if err := json.Unmarshal([]byte(line), &j); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		if j.Type != "summary" && j.Conn != 2 {
			t.Errorf("--conn 2 printed conn %d", j.Conn)
		}
		kinds[j.Type]++
	}
	if kinds["segment"] != len(shutdownConv.pkts) || kinds["finding"] != 2 || kinds["conn"] != 1 || kinds["summary"] != 1 {
		t.Errorf("JSON lines by type %v", kinds)
	}
	out.Reset()
	if _, err := Run("x.pcap", bytes.NewReader(data), &out, Options{Conn: "10.0.0.2:80-10.0.0.1:40000"}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\nconn "); n != 2 { // the first is at the start
		t.Errorf("--conn ADDR-ADDR matched %d connections after the first, want 2 (all three share the tuple):\n%s", n, out.String())
	}
	if _, err := Run("x.pcap", bytes.NewReader(data), &out, Options{Conn: "9"}); err == nil || !strings.Contains(err.Error(), "no connection 9") {
		t.Errorf("--conn 9: err %v", err)
	}
}

// Bad files fail with an error that names the file and what is wrong.
func TestBadFiles(t *testing.T) {
	good := pcapOf(t, linkEthernet, closeConv)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "bad.pcap: not a capture: 0 bytes"},
		{"text", []byte("hello, world\n"), "bad.pcap: not a capture (pcap, pcapng, or either gzip'd): it starts with bytes 68 65 6c 6c"},
		{"truncated", good[:len(good)-10], "bad.pcap: truncated at packet 9"},
		{"bad gzip", []byte{0x1f, 0x8b, 1, 2, 3}, "bad.pcap: gzip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Analyze("bad.pcap", bytes.NewReader(tc.data), false, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// FuzzExplain feeds explain arbitrary files: it may reject them, never
// panic.
func FuzzExplain(f *testing.F) {
	f.Add(pcapOf(f, linkEthernet, closeConv, shutdownConv))
	f.Add(pcapOf(f, linkSLL2, refusedConv, lostFINConv))
	f.Add(pcapOf(f, linkRaw, middleboxConv))
	f.Add(pcapngTwice(f, closeConv))
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		Run("fuzz.pcap", bytes.NewReader(data), &out, Options{})
		out.Reset()
		Run("fuzz.pcap", bytes.NewReader(data), &out, Options{Format: "json", OnlyResets: true})
		out.Reset()
		Run("fuzz.pcap", bytes.NewReader(data), &out, Options{Format: "ladder", SVG: io.Discard})
	})
}

// Retransmissions and gaps the capture lacks are counted in the ledger and
// marked in the timeline; the handshake's halves place the capture.
func TestLedgerRetransmissionsAndGaps(t *testing.T) {
	c := conv{client: cAddr, server: sAddr, cisn: 1000, sisn: 5000, pkts: []wpkt{
		{flags: fS, seq: 0, win: 29184, wscale: 7},
		{fromServer: true, flags: fSA, seq: 0, ack: 1, win: 29184, wscale: 7, dt: 20 * time.Millisecond},
		{flags: fA, seq: 1, ack: 1, win: 228},
		{flags: fPA, seq: 1, ack: 1, win: 228, len: 100},
		{flags: fPA, seq: 201, ack: 1, win: 228, len: 100},
		{flags: fPA, seq: 1, ack: 1, win: 228, len: 100, dt: 200 * time.Millisecond},
		{fromServer: true, flags: fA, seq: 1, ack: 101, win: 228},
	}}
	data := pcapOf(t, linkEthernet, c)
	cs, _ := analyze(t, data)
	l := cs[0].Ledgers()[0]
	if l.Sent != 200 || l.Acked != 100 || l.Retransmitted != 1 || l.RetransmittedBytes != 100 || l.Missed != 100 {
		t.Errorf("client ledger %+v; want 200 sent, 100 acked, 1 retransmission of 100 bytes, 100 missed", l)
	}
	if near, why := cs[0].Near(); near != "client" {
		t.Errorf("Near() = %s (%s), want client: the SYN/ACK took 21 ms to come back, the ACK 1 ms", near, why)
	}
	var out bytes.Buffer
	if _, err := Run("x.pcap", bytes.NewReader(data), &out, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"seq 201:301, ack 1, win 228, length 100 (the capture lacks the bytes before it)", "seq 1:101, ack 1, win 228, length 100 (retransmission)", "# teardown: still open (Zeek S1)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// The text timeline of the close and shutdown experiments, a refused
// connection and a lost FIN, in one capture, against a golden file
// (go test ./demo/explain -update rewrites it).
func TestTextGolden(t *testing.T) {
	var out bytes.Buffer
	if _, err := Run("experiments.pcap", bytes.NewReader(pcapOf(t, linkEthernet, closeConv, shutdownConv, refusedConv, lostFINConv)), &out, Options{}); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "experiments.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./demo/explain -update)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("text output differs from %s (-want +got):\n-%s\n+%s", golden, want, out.Bytes())
	}
}

// A pcap whose packets are longer than the snap length its header declares
// reads as tcpdump and Wireshark read it.
func TestPacketsLongerThanSnapLen(t *testing.T) {
	data := pcapOf(t, linkEthernet, closeConv)
	data[16], data[17], data[18], data[19] = 60, 0, 0, 0 // snap length 60, little-endian
	cs, _ := analyze(t, data)
	if len(cs) != 1 || len(cs[0].Findings) != 2 {
		t.Fatalf("got %d connections", len(cs))
	}
}

// A keepalive probe is marked in the timeline and the RST after the
// unanswered ones cites them; a FIN after a long silence says idle.
func TestKeepaliveAndIdleEvidence(t *testing.T) {
	cs, _ := analyze(t, pcapOf(t, linkEthernet, keepaliveConv))
	f := cs[0].Findings[0]
	if got, want := refs(f.Evidence), "#6, #8"; got != want || !strings.Contains(f.Why, "3 keepalive probe(s)") {
		t.Errorf("evidence %s (%s), want %s and 3 probes", got, f.Why, want)
	}
	var out bytes.Buffer
	if _, err := Run("k.pcap", bytes.NewReader(pcapOf(t, linkEthernet, keepaliveConv)), &out, Options{}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "(keepalive probe)"); n != 3 {
		t.Errorf("%d packets marked as keepalive probes, want 3:\n%s", n, out.String())
	}
	if l := cs[0].Ledgers()[0]; l.Retransmitted != 0 {
		t.Errorf("keepalive probes counted as retransmissions: %+v", l)
	}
	idleFIN := conv{client: cAddr, server: sAddr, cisn: 1000, sisn: 5000, pkts: append(handshake(),
		wpkt{flags: fPA, seq: 1, ack: 1, win: 228, len: 3},
		wpkt{fromServer: true, flags: fPA, seq: 1, ack: 4, win: 228, len: 5},
		wpkt{flags: fA, seq: 4, ack: 6, win: 228},
		wpkt{fromServer: true, flags: fFA, seq: 6, ack: 4, win: 228, dt: 75 * time.Second},
		wpkt{flags: fFA, seq: 4, ack: 7, win: 228},
		wpkt{fromServer: true, flags: fA, seq: 7, ack: 5, win: 228},
	)}
	cs, _ = analyze(t, pcapOf(t, linkEthernet, idleFIN))
	if f := cs[0].Findings[0]; f.Class != ClassClose || !strings.Contains(f.Why, "idle timeout") {
		t.Errorf("FIN after 75 s: %s (%s), want close() for an idle timeout", f.Class, f.Why)
	}
}

// The ladder and the SVG of a capture are demo/render's, drawn from
// Conn.Events: an arrow per packet, the inferred reason under the FIN and
// the RST, the teardown as a note; --conn selects what they draw.
func TestLadderAndSVG(t *testing.T) {
	data := pcapOf(t, linkEthernet, closeConv, refusedConv)
	var out, svg bytes.Buffer
	if _, err := Run("x.pcap", bytes.NewReader(data), &out, Options{Format: "ladder", Conn: "1", SVG: &svg}); err != nil {
		t.Fatal(err)
	}
	lad := out.String()
	for _, want := range []string{"── F. seq 4 ack 1 ──", "inferred [high]: data arrived in FIN-WAIT-2 after close()", "# conn 1: half-close then reset (Zeek RSTO)", "# summary of x.pcap"} {
		if !strings.Contains(lad, want) {
			t.Errorf("ladder lacks %q:\n%s", want, lad)
		}
	}
	if n := strings.Count(lad, "──▶│") + strings.Count(lad, "│◀──"); n != len(closeConv.pkts) {
		t.Errorf("ladder has %d arrows, want %d (one per packet of conn 1):\n%s", n, len(closeConv.pkts), lad)
	}
	if strings.Contains(lad, "conn 2") {
		t.Errorf("--conn 1 drew conn 2:\n%s", lad)
	}
	s := svg.String()
	if !strings.HasPrefix(s, "<?xml") && !strings.HasPrefix(s, "<svg") || !strings.Contains(s, "data arrived in FIN-WAIT-2") || !strings.Contains(s, "tcplab explain x.pcap") {
		t.Errorf("SVG:\n%.600s", s)
	}
}

// AnalyzeSome keeps the packets of the connections a --conn filter
// selects, and only theirs.
func TestAnalyzeSomeKeepsOnlySelected(t *testing.T) {
	match, err := ConnFilter("2")
	if err != nil {
		t.Fatal(err)
	}
	var kept []int
	_, err = AnalyzeSome("x.pcap", bytes.NewReader(pcapOf(t, linkEthernet, closeConv, shutdownConv, refusedConv)), match, func(c *Conn) {
		kept = append(kept, len(c.Segments()))
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 3 || kept[0] != 0 || kept[1] != len(shutdownConv.pkts) || kept[2] != 0 {
		t.Errorf("packets kept per connection %v, want [0 %d 0]", kept, len(shutdownConv.pkts))
	}
	if _, err := ConnFilter("x-y"); err == nil {
		t.Error("ConnFilter(x-y) accepted")
	}
}

// A client's RST without ACK that answers the SYN/ACK it never ACKed, with
// the seq that SYN/ACK acknowledged: the socket was closed while connect()
// waited (the catalogue's close-syn-sent); a RST with another seq answers
// the SYN/ACK too, but says nothing of a close.
func TestCloseInSynSent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		seq    uint32
		closed bool
	}{
		{"closed while connecting", 1, true},
		{"other seq", 7, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, _ := analyze(t, pcapOf(t, linkEthernet, conv{client: cAddr, server: sAddr, cisn: 1000, sisn: 5000, pkts: []wpkt{
				{flags: fS, seq: 0, win: 29184, wscale: 7},
				{fromServer: true, flags: fSA, seq: 0, ack: 1, win: 29184, wscale: 7, dt: 100 * time.Millisecond},
				{flags: fR, seq: tc.seq},
			}}))
			if len(cs) != 1 || len(cs[0].Findings) != 1 {
				t.Fatalf("want one connection with one finding, got %d connections", len(cs))
			}
			f := cs[0].Findings[0]
			if got := verdict(f); got != "RST client connection gone medium" {
				t.Errorf("verdict %q, want RST client connection gone medium", got)
			}
			if got := strings.Contains(f.Reason, "close() in SYN-SENT"); got != tc.closed {
				t.Errorf("reason %q: names close() in SYN-SENT: %v, want %v", f.Reason, got, tc.closed)
			}
		})
	}
}

// A lone FIN after a silence of a retransmission timeout or more may be
// the retransmission of a copy lost before the capture point: explain
// names that beside close() (low); a FIN right after the handshake does
// not.
func TestFINMaybeRetransmitted(t *testing.T) {
	for _, tc := range []struct {
		dt   time.Duration
		want bool
	}{{300 * time.Millisecond, true}, {10 * time.Millisecond, false}} {
		cs, _ := analyze(t, pcapOf(t, linkEthernet, conv{client: cAddr, server: sAddr, cisn: 1000, sisn: 5000, pkts: append(handshake(),
			wpkt{flags: fFA, seq: 1, ack: 1, win: 228, dt: tc.dt},
			wpkt{fromServer: true, flags: fA, seq: 1, ack: 2, win: 228},
		)}))
		f := cs[0].Findings[0]
		got := strings.Contains(strings.Join(f.Alternatives, "; "), "lost before the capture point")
		if verdict(f) != "FIN client close() low" || got != tc.want {
			t.Errorf("FIN after %v: %s, alternatives %q: names a lost first copy %v, want %v", tc.dt, verdict(f), f.Alternatives, got, tc.want)
		}
	}
}
