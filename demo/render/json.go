package render

import (
	"encoding/json"
	"io"

	"github.com/tcplab/tcplab/stack/trace"
)

// JSON writes events as JSON lines, one object per event (see
// trace.Event.MarshalJSON for the schema).
type JSON struct{ enc *json.Encoder }

// NewJSON returns a JSON-lines writer on w.
func NewJSON(w io.Writer) *JSON { return &JSON{enc: json.NewEncoder(w)} }

// Write writes one event as one line.
func (j *JSON) Write(e trace.Event) error { return j.enc.Encode(e) }

// WriteAll writes every event of a trace.
func (j *JSON) WriteAll(events []trace.Event) error {
	for _, e := range events {
		if err := j.Write(e); err != nil {
			return err
		}
	}
	return nil
}
