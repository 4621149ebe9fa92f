package view

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// findChromium returns Debian's chromium (or a chromium-browser) on PATH.
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// startChromium runs a headless Chromium on url with the DevTools protocol
// on a port of 127.0.0.1 it picks, and returns a CDP client of the page.
// The browser (its whole process group) is stopped at the end of the test.
func startChromium(t *testing.T, bin, pageURL string) *cdpClient {
	t.Helper()
	args := []string{"--headless", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
		"--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--window-size=1400,1400"}
	if os.Geteuid() == 0 {
		args = append(args, "--no-sandbox") // Chromium refuses to run as root with its sandbox
	}
	cmd := exec.Command(bin, append(args, pageURL)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	var log bytes.Buffer
	wsURL := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		re := regexp.MustCompile(`DevTools listening on (ws://\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				wsURL <- m[1]
			} else if log.Len() < 8192 {
				log.WriteString(sc.Text() + "\n")
			}
		}
	}()
	t.Cleanup(func() {
		// Stop the browser and its helpers: the process group it leads.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		exited := make(chan struct{})
		go func() {
			<-drained
			cmd.Wait()
			close(exited)
		}()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	var browser string
	select {
	case browser = <-wsURL:
	case <-time.After(60 * time.Second):
		t.Fatalf("chromium printed no DevTools URL in 60 s; its stderr:\n%s", log.String())
	}
	// The page's own target, from the DevTools HTTP endpoint.
	host := strings.TrimPrefix(browser, "ws://")
	host = host[:strings.IndexByte(host, '/')]
	var page string
	deadline := time.Now().Add(30 * time.Second)
	for page == "" {
		resp, err := http.Get("http://" + host + "/json/list")
		if err == nil {
			var targets []struct {
				Type, URL            string
				WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
			}
			err = json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
			for _, tg := range targets {
				if tg.Type == "page" && strings.HasPrefix(tg.URL, pageURL) {
					page = tg.WebSocketDebuggerURL
				}
			}
		}
		if page == "" && time.Now().After(deadline) {
			t.Fatalf("no page target for %s at %s (last error %v)", pageURL, host, err)
		}
		if page == "" {
			time.Sleep(50 * time.Millisecond) // polling the browser's target list
		}
	}
	ws, err := dialWS(page, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return &cdpClient{ws: ws}
}

// waitFor evaluates expr in the page until it is true, for up to 30 s.
func waitFor(t *testing.T, c *cdpClient, expr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ok bool
		err := c.eval(expr, &ok)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 30 s for %s (last error %v)", expr, err)
		}
		time.Sleep(20 * time.Millisecond) // polling the page's state, not a guess at a delay
	}
}

// clickItem scrolls the ladder to item i and clicks its row with the mouse,
// then waits for the details panel to show it.
func clickItem(t *testing.T, c *cdpClient, i int) {
	t.Helper()
	if err := c.eval(fmt.Sprintf(`(() => { const s = tcplabView.state, l = document.getElementById('ladder');
		l.scrollTop = Math.max(0, s.ys[s.pos[%d]] - 100); return true; })()`, i), nil); err != nil {
		t.Fatal(err)
	}
	hit := fmt.Sprintf(`document.querySelector('#rows rect.hit[data-i="%d"]')`, i)
	waitFor(t, c, hit+` !== null`)
	var at [2]float64
	if err := c.eval(`(() => { const b = `+hit+`.getBoundingClientRect(); return [b.left + 30, b.top + b.height / 2]; })()`, &at); err != nil {
		t.Fatal(err)
	}
	if err := c.click(at[0], at[1]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, fmt.Sprintf(`tcplabView.state.sel === %d && document.getElementById('fields') !== null`, i))
}

// TestChromium loads the page of the close experiment in a real headless
// Chromium, driven over the DevTools protocol: the page shows the RST and
// its reason, and a mouse click on a segment shows its fields.
func TestChromium(t *testing.T) {
	bin := findChromium()
	if bin == "" {
		t.Skip("no chromium on PATH: this test drives Debian's chromium package (apt-get install chromium; .ci/run installs it)")
	}
	events := closeTrace(t)
	rst := theRST(t, events)
	d, err := Load("close.jsonl", bytes.NewReader(closeJSON(t)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Listen(d, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})

	c := startChromium(t, bin, srv.URL())
	waitFor(t, c, `document.body && document.body.dataset.ready === '1'`)

	// The RST and its reason: in the list of FINs and RSTs, and on the ladder.
	var findings, ladder string
	if err := c.eval(`document.getElementById('findings').innerText`, &findings); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(findings, rst.Flags+" from client") || !strings.Contains(findings, rst.Reason) {
		t.Errorf("the page's FINs and RSTs do not show the RST %s and its reason %q:\n%s", rst.Flags, rst.Reason, findings)
	}
	var rstItem, dataItem *Item
	for _, it := range d.Items {
		if it.Kind == "segment" && it.Dir == "out" && strings.Contains(it.Flags, "R") {
			rstItem = it
		}
		if it.Kind == "segment" && it.Dir == "out" && it.Host == "server" && strings.Contains(it.Label, `"Hi, aaa"`) {
			dataItem = it
		}
	}
	if rstItem == nil || dataItem == nil {
		t.Fatal("no RST or no server data among the items")
	}
	if err := c.eval(fmt.Sprintf(`(() => { const s = tcplabView.state, l = document.getElementById('ladder');
		l.scrollTop = Math.max(0, s.ys[s.pos[%d]] - 100); return true; })()`, rstItem.I), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, `Array.from(document.querySelectorAll('#rows text.reason')).some((e) => e.textContent.includes(`+jsString(rst.Reason)+`))`)
	if err := c.eval(`Array.from(document.querySelectorAll('#rows text')).map((e) => e.textContent).join('\n')`, &ladder); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ladder, rst.Flags+" seq ") {
		t.Errorf("the ladder has no %s arrow label:\n%s", rst.Flags, ladder)
	}

	// A click on the server's data segment shows its fields.
	clickItem(t, c, dataItem.I)
	var details string
	if err := c.eval(`document.getElementById('details').innerText`, &details); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"flags\tP.", "host\tserver", "direction\tsent", "len\t7", `data	"Hi, aaa"`, "seq\t", "ack\t", "win\t", "src\t", "dst\t"} {
		if !strings.Contains(details, want) {
			t.Errorf("after a click on the data segment, the details lack %q:\n%s", want, details)
		}
	}
	// And a click on the RST, its reason.
	clickItem(t, c, rstItem.I)
	if err := c.eval(`document.getElementById('details').innerText`, &details); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"flags\t" + rst.Flags, "host\tclient", "reason\t" + rst.Reason} {
		if !strings.Contains(details, want) {
			t.Errorf("after a click on the RST, the details lack %q:\n%s", want, details)
		}
	}
	// The graphs drew the selected connection.
	var title string
	if err := c.eval(`document.getElementById('tsg0title').textContent`, &title); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(title, "client → server") {
		t.Errorf("time-sequence graph title %q", title)
	}
	var at2 [2]float64
	// A click on the SYN in the client's time-sequence graph selects it.
	var pt [3]float64
	if err := c.eval(`(() => { const g = tcplabView.graphs.tsg0, r = document.getElementById('tsg0').getBoundingClientRect();
		const p = g.pts.find((p) => tcplabView.state.data.items[p[2]].flags === 'S');
		return [r.left + p[0], r.top + p[1], p[2]]; })()`, &pt); err != nil {
		t.Fatal(err)
	}
	if err := c.click(pt[0], pt[1]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, fmt.Sprintf(`tcplabView.state.sel === %d && document.getElementById('seltitle').textContent.includes('out: S seq 0')`, int(pt[2])))
	// The row buttons zoom the ladder.
	var rowH float64
	if err := c.eval(`tcplabView.state.rowH`, &rowH); err != nil {
		t.Fatal(err)
	}
	if err := c.eval(`(() => { const b = document.getElementById('zoomin').getBoundingClientRect(); return [b.left + b.width / 2, b.top + b.height / 2]; })()`, &at2); err != nil {
		t.Fatal(err)
	}
	if err := c.click(at2[0], at2[1]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, fmt.Sprintf(`tcplabView.state.rowH > %v`, rowH))

	var problems []string
	if err := c.eval(`tcplabView.problems`, &problems); err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("the page reported: %s", p)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
