// Package view serves a local web page for one trace or capture: the
// ladder (two lanes per connection, zoom, scroll, a filter by connection),
// every field and the reason of a segment, call or state on click, a
// time-sequence graph per direction (sequence numbers, ACKs and the window
// edge over time, as Wireshark's Stevens and tcptrace graphs draw them),
// and per connection the hosts' buffer levels and TCP state bands.
//
// # Inputs
//
// Load reads three kinds of file and tells them apart by their first
// bytes: a trace as JSON lines (what `tcplab run --format json` writes),
// a pcapng file tcplab wrote (`tcplab run --pcap`: its per-packet comments
// carry each segment's host, direction, state and reason), and any other
// capture (pcap or pcapng, optionally gzip'd), read by package explain,
// whose connections, inferred states and inferred FIN and RST reasons the
// page shows. What is observed and what is inferred is said on the page,
// field by field.
//
// # Serving
//
// Listen binds 127.0.0.1 only (a random port unless Config.Addr names
// one, on 127.0.0.1) and refuses requests whose Host header is not that
// address, so that no other machine, and no web page through DNS
// rebinding, can read the trace. The page's HTML, JavaScript and CSS are
// embedded in the binary (no CDN, no build step); the data is one JSON
// document, /data.json, built by Load.
//
// # Cost
//
// Load holds the whole input as items in memory (a few hundred bytes per
// event or packet) and the page draws only the rows in view, so thousands
// of segments scroll smoothly; a capture of millions of packets is better
// cut with explain --conn first.
package view
