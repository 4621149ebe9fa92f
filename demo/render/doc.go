// Package render turns a trace into something people read: a text
// timeline in the manner of tcpdump, JSON lines for programs, and (in
// their own files) ladder diagrams and pcapng captures.
//
// Renderers take []trace.Event (or a stream of them) and never touch a
// stack; they are pure functions of the trace, so golden files pin them.
package render
