package capture

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/tun"
)

// TestIntegrationCapture captures a short exchange between the two gVisor
// hosts over a TUN lab, from before the SYN to after the lab is closed, and
// checks what the file holds: every segment twice (the sender's copy coming
// out of its device, the receiver's going into its own), with its payload,
// on the right devices, in time order, and nothing dropped.
func TestIntegrationCapture(t *testing.T) {
	if err := tun.Check(); err != nil {
		if errors.Is(err, tun.ErrNeedRoot) || errors.Is(err, tun.ErrNoTUN) {
			t.Skipf("skipping: a TUN lab cannot be created here: %v", err)
		}
		t.Fatal(err)
	}
	w, err := tun.New(context.Background(), tun.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	c, err := Start(w, &file, Config{})
	if err != nil {
		w.Close()
		t.Fatalf("Start: %v", err)
	}
	lab, err := stack.NewLab(w, stack.Config{}, true)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ln, err := lab.Server.Listen(9527, 1)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := lab.Client.Dial(ctx, lab.ServerAddr(9527))
	if err != nil {
		t.Fatal(err)
	}
	sv, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Write(ctx, []byte("aaa")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(readerCtx{ctx, sv}, buf); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	sv.Close()
	ln.Close()
	time.Sleep(50 * time.Millisecond)
	if err := lab.Close(); err != nil {
		t.Errorf("lab.Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Capture.Close: %v", err)
	}
	if c.Dropped() != 0 {
		t.Errorf("Dropped() = %d, want 0", c.Dropped())
	}
	pkts, err := Read(bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(pkts) != c.Packets() {
		t.Errorf("file holds %d packets, Packets() = %d", len(pkts), c.Packets())
	}
	var syn, data []WirePacket
	for i, p := range pkts {
		t.Logf("%v", p)
		if i > 0 && p.Time.Before(pkts[i-1].Time) {
			t.Errorf("packet %d at %v is before packet %d at %v", i, p.Time, i-1, pkts[i-1].Time)
		}
		switch {
		case p.Flags == "S":
			syn = append(syn, p)
		case p.Len == 3:
			data = append(data, p)
		}
	}
	for what, ps := range map[string][]WirePacket{"SYN": syn, "data": data} {
		if len(ps) != 2 {
			t.Fatalf("%d %s copies, want 2", len(ps), what)
		}
		if ps[0].IfName != "tcl-client" || ps[0].Dir != Host || ps[1].IfName != "tcl-server" || ps[1].Dir != Outgoing {
			t.Errorf("%s copies: %v / %v; want tcl-client host, then tcl-server outgoing", what, ps[0], ps[1])
		}
	}
	if string(data[1].Payload) != "aaa" {
		t.Errorf("payload %q, want aaa", data[1].Payload)
	}
	// Both sides closed: each FIN crosses the wire, twice.
	fins := 0
	for _, p := range pkts {
		if p.Flags == "F." || p.Flags == "FP." {
			fins++
		}
	}
	if fins != 4 {
		t.Errorf("%d FIN copies, want 4", fins)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	readBack(t, file.Bytes(), pkts)
	left, _ := tun.Leftovers()
	for _, l := range left {
		t.Errorf("left behind: %s", l)
	}
}

// readerCtx reads a stack.Conn with a context.
type readerCtx struct {
	ctx context.Context
	c   *stack.Conn
}

func (r readerCtx) Read(p []byte) (int, error) { return r.c.Read(r.ctx, p) }

// readBack reads the file with the standard tools, when installed: tcpdump
// must see the same packets with the same directions ("In": the packet
// came out of the device into the kernel, "Out": the kernel sent it into
// the device), tshark the device names of the interface blocks.
func readBack(t *testing.T, file []byte, pkts []WirePacket) {
	path := filepath.Join(t.TempDir(), "lab.pcapng")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("tcpdump", func(t *testing.T) {
		tcpdump, err := exec.LookPath("tcpdump")
		if err != nil {
			t.Skip("tcpdump is not installed (apt-get install tcpdump)")
		}
		out, err := exec.Command(tcpdump, "-nr", path).Output()
		if err != nil {
			t.Fatalf("tcpdump -nr: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != len(pkts) {
			t.Fatalf("tcpdump printed %d lines, want %d:\n%s", len(lines), len(pkts), out)
		}
		for i, l := range lines {
			want := map[Dir]string{Host: " In ", Outgoing: " Out "}[pkts[i].Dir]
			if !strings.Contains(l, want) || !strings.Contains(l, "Flags ["+pkts[i].Flags+"]") {
				t.Errorf("tcpdump line %d = %q, want %q and Flags [%s]", i, l, want, pkts[i].Flags)
			}
		}
	})
	t.Run("tshark", func(t *testing.T) {
		tshark, err := exec.LookPath("tshark")
		if err != nil {
			t.Skip("tshark is not installed (apt-get install tshark)")
		}
		out, err := exec.Command(tshark, "-r", path, "-T", "fields", "-e", "frame.interface_name").Output()
		if err != nil {
			t.Fatalf("tshark -r: %v", err)
		}
		names := strings.Fields(string(out))
		if len(names) != len(pkts) {
			t.Fatalf("tshark read %d packets, want %d", len(names), len(pkts))
		}
		for i, n := range names {
			if n != pkts[i].IfName {
				t.Errorf("tshark packet %d on %q, want %q", i, n, pkts[i].IfName)
			}
		}
	})
}
