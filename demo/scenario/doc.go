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
//   - reference.go: the language at a glance (tcplab syntax).
//
// # Semantics
//
// Steps run in order. Before each one the runner waits until the lab is
// quiet: nothing has happened for Options.Quiet of real time, or, in
// virtual time, nothing is in flight (Options.Settle). What a step set in
// motion has finished before the next one starts, which makes virtual runs
// reproducible and makes the TUN and memory wires tell the same story.
// Expectations check the trace up to their own line.
package scenario
