package render

import (
	"fmt"
	"io"

	"github.com/tcplab/tcplab/stack"
)

// LedgerRow is one connection's byte ledger for the summary table.
type LedgerRow struct {
	Host, Conn string
	stack.Ledger
}

// Ledgers writes the byte ledger of every connection as a table: what the
// application wrote, what went on the wire and was acknowledged, what
// arrived, was read, or was still unread, and what a reset destroyed.
func Ledgers(w io.Writer, rows []LedgerRow) error {
	if len(rows) == 0 {
		return nil
	}
	if _, err := fmt.Fprintf(w, "# bytes         written  sent  acked  unacked | arrived  read  unread | destroyed by reset\n"); err != nil {
		return err
	}
	for _, r := range rows {
		d := "-"
		if r.Discarded != nil {
			d = fmt.Sprintf("%s: %d unacked, %d unread", r.Discarded.By, r.Discarded.Unacked, r.Discarded.Unread)
		}
		if _, err := fmt.Fprintf(w, "# %-6s %-4s %9d %5d %6d %8d | %7d %5d %7d | %s\n",
			r.Host, r.Conn, r.Written, r.Sent, r.Acked, r.SndQueued, r.Received, r.Read, r.RcvQueued, d); err != nil {
			return err
		}
	}
	return nil
}
