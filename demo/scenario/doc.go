// Package scenario provides tcplab's scenario language: .lab files that
// script both hosts of a lab step by step, with expectations on what the
// stacks do, and the built-in catalogue of teardown cases.
//
// # Files
//
//   - ast.go: the parsed form (Script, Step, Call, Expect, ...);
//   - lex.go, parse.go: the parser, with file:line:col errors and "did you
//     mean" suggestions;
//   - run.go, expect.go: the runner, which drives a Lab through the
//     stack.Peer interface (a gVisor Host or a real kernel socket) and
//     checks expectations against the trace;
//   - simulate.go: Simulate, a run on the in-memory wire in virtual time;
//   - catalog.go, catalog/*.lab: the embedded catalogue;
//   - reference.go: the language at a glance (tcplab syntax);
//   - background.go, parse_conc.go, sockets.go: calls in the background
//     ("&", "wait"), sockets made before they connect ("socket as"),
//     O_NONBLOCK and options on listeners.
//
// # Semantics
//
// Steps run in order. Before each one the runner waits until the lab is
// quiet: nothing has happened for Options.Quiet of real time, or, in
// virtual time, nothing is in flight (Options.Settle). What a step set in
// motion has finished before the next one starts, which makes virtual runs
// reproducible and makes the TUN and memory wires tell the same story.
// Expectations check the trace up to their own line.
//
// Every call runs on its own goroutine. A foreground call is waited for
// at most Options.StepTimeout on the lab's clock; one still blocked then
// is reported "still blocked after D" with its expectation (a failure,
// not a stop) and left running in the background. A call ending in "&"
// is waited for only until it returns or starts to wait, so that the
// trace does not depend on the scheduler; its expectation is checked when
// the runner next looks (before each step, at "wait", at the end). In
// virtual time a background call does not count as blocked: it does not
// move the clock (stack.Waiter), so the script alone says when time
// passes. Calls still blocked at the end are reported, then abandoned.
package scenario
