package view

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/tcplab/tcplab/demo/pcapng"
)

// FuzzLoad feeds Load any bytes: it returns data or an error, never
// panics, and what it returns encodes as the page's JSON.
func FuzzLoad(f *testing.F) {
	f.Add(closeJSON(f))
	var b bytes.Buffer
	if _, err := pcapng.Write(&b, closeTrace(f), pcapng.Options{Application: "tcplab"}); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	b.Reset()
	if _, err := pcapng.Write(&b, closeTrace(f), pcapng.Options{Application: "x", Only: "server"}); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Add([]byte(`{"kind":"state","t":1e300,"host":"client","conn":"c1","from":"X","to":"Y"}` + "\n"))
	f.Add([]byte(`{"kind":"segment","dir":"in","src":"a:1","dst":"b:2","flags":"R","host":"server"}` + "\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := Load("fuzz", bytes.NewReader(in), Options{MaxItems: 10000})
		if err != nil {
			return
		}
		if _, err := json.Marshal(d); err != nil {
			t.Fatalf("the data does not encode: %v", err)
		}
		for _, it := range d.Items {
			if it.Conn >= len(d.Conns) || (it.Arrive >= len(d.Items)) || it.Of >= len(d.Items) {
				t.Fatalf("item %d points outside: conn %d arrive %d of %d", it.I, it.Conn, it.Arrive, it.Of)
			}
		}
	})
}
