package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
)

// ProgramEnv is what tcplab exec gets from its caller to run a user's
// program inside the TUN wire's namespace.
type ProgramEnv struct {
	// NewPeer records the connections of a program running inside the
	// wire's namespace as side ("client" or "server"), observed as the
	// Linux kernel (kernelpeer.NewProgramPeer).
	NewPeer func(w stack.Wire, side string, rec *trace.Recorder) (stack.Peer, func() error, error)
	// NewRelay records the sockets of a relay program running inside the
	// wire's namespace (--side middle) under the host name name: accept
	// observes the kernel's address on the client's link, connect its
	// address on the server's link (kernelpeer.NewRelayPeers). Nil means
	// --side middle is not available.
	NewRelay func(w stack.Wire, name string, rec *trace.Recorder) (accept, connect stack.Peer, release func() error, err error)
	// Start starts cmd inside the wire's namespace; the program dies with
	// tcplab, even when tcplab is killed.
	Start func(w stack.Wire, cmd *exec.Cmd) (Process, error)
	// WaitListening returns once something listens on port inside the
	// wire's namespace, or ctx's error.
	WaitListening func(ctx context.Context, w stack.Wire, port uint16) error
}

// Process is a program started by ProgramEnv.Start.
type Process interface {
	// Pid returns its process id.
	Pid() int
	// Done is closed once it has exited and been reaped.
	Done() <-chan struct{}
	// Wait waits for it and returns its wait status (exact: the
	// program's own, signals included) and how long it ran.
	Wait() (syscall.WaitStatus, time.Duration, error)
	// Signal sends sig unless it has exited.
	Signal(sig os.Signal) error
	// Stop sends SIGTERM, then SIGKILL after grace, and waits.
	Stop(grace time.Duration)
}

// The ports of the built-in peers and the exit code of a program tcplab
// could not start (as a shell reports a command not found).
const (
	execPort        = 9527
	ExitNoProgram   = 127
	programStopWait = 2 * time.Second // between SIGTERM and SIGKILL
)

// programExit is the outcome of exec: the program's exit code, which Main
// returns, and a message to print first ("" for none).
type programExit struct {
	code int
	msg  string
}

func (e programExit) Error() string { return e.msg }

// builtinPeers are exec's built-in scenarios for the gVisor server.
var builtinPeers = map[string]string{
	"article": `the article's server: read a message, work 5 s, answer "Hi, <message>", read again until EOF or error, close`,
	"echo":    "writes back everything it reads, until EOF or error, then closes",
	"sink":    "reads everything, never answers, closes at EOF or error",
	"http":    httpHelp,
}

// execRun is one tcplab exec: the program and how the scenario meets it.
type execRun struct {
	side    string          // the side the program plays
	builtin string          // a built-in peer, or "" for a scenario
	http    httpPeer        // the http peer's options
	rec     *trace.Recorder // the lab's trace, for the built-in peer's notes
	port    uint16          // the built-in peer's port; side middle: the relay's
	argv    []string
	path    string // argv[0] resolved
	out     io.Writer
	stdout  io.Writer // the program's standard output
	stderr  io.Writer // tcplab's notes
	stdin   *os.File

	// Side middle: the server's port the relay connects to, the relay's
	// observers, and more variables for the program.
	peerPort uint16
	relay    *relay
	env      []string

	proc      Process
	startOnce sync.Once
	startErr  error
	status    string // how the program ended, for the summary
	code      int    // the program's exit code
	stopped   bool   // tcplab ended it (side server, after the scenario)
}

func newExec(env *Env) *cobra.Command {
	var f runFlags
	var side, out string
	var port uint16
	cmd := &cobra.Command{
		Use:   "exec [flags] [--side client|server|middle] [SCENARIO] -- CMD [ARGS...]",
		Short: "run your own program inside the lab as the client, the server or a relay between them, traced as the Linux kernel it uses",
		Long: `exec runs CMD inside the lab's network namespace, where its sockets are the Linux
kernel's, and puts a scripted gVisor host on the other side. Everything the kernel does
for the program is observed (segments, states, the kernel's reasons for RSTs) and shown
with the gVisor host's side, as with run --kernel. The program's standard input and
output pass through; tcplab's trace goes to standard error, or to --out FILE.

--side client (the default): CMD connects to the gVisor server at $TCPLAB_PEER
(host:port). SCENARIO is a .lab file whose statements drive the server (they may not
use the client: the program is the client), or a built-in peer:
  article  ` + builtinPeers["article"] + `
  echo     ` + builtinPeers["echo"] + `
  sink     ` + builtinPeers["sink"] + `
  http     ` + builtinPeers["http"] + `
The default is article. The program starts once the server listens.

--side server: CMD must listen on $TCPLAB_LISTEN (the kernel's address on the client's
link, with the port of the scenario's "client connect server:PORT"); the scenario's
client connects once the port accepts. When the scenario ends the program is stopped
(SIGTERM).

--side middle: CMD is a relay or proxy between the scenario's gVisor client and
gVisor server, both scripted by SCENARIO (which must listen on the server and
connect the client). The kernel routes between two TUN links, one to each gVisor
host, and the relay's sockets are the kernel's:
  client 198.18.1.2 --tcl-client-- 198.18.1.1 [relay] 198.18.2.1 --tcl-server-- 198.18.2.2 server
CMD must listen on $TCPLAB_LISTEN (198.18.1.1 with the port of the scenario's "client
connect server:PORT"; the client's connect goes there instead of to the server, once
the port accepts) and connect to $TCPLAB_PEER (198.18.2.2 with the port of "server
listen PORT"). Both legs are traced, the relay's two sockets observed like any
kernel socket (host "relay"), its calls from syscall tracepoints. At the end a
verdict per FIN and RST says how it crossed the relay (passed on after N ms, turned
into a RST, never passed on), inferred by pairing what the relay received on one leg
with what it sent next on the other. When the scenario ends the relay is stopped
(SIGTERM). The variables are the program's: quote them from your shell, e.g.
  -- sh -c 'exec socat TCP-LISTEN:7000,reuseaddr TCP:$TCPLAB_PEER'
--format ladder and --svg draw two hosts: use text or json.

Expectations ("expect client sent R. reason ~ \"unread\"") work on the program's side.
The expectations at the end of a scenario are checked after the program has exited.
The exit code is the program's when every expectation held, 1 when one failed, 127
when CMD could not be started, 130 after Ctrl-C (which ends both).
` + longRunHelp,
		Example: `  sudo tcplab exec -- python3 examples/halfclose.py          # the article's server
  sudo tcplab exec echo --explain -- python3 examples/close_unread.py
  sudo tcplab exec --side server my.lab -- ./myserver --port 8080
  sudo tcplab exec --side middle examples/relay.lab -- sh -c 'exec socat -t 5 TCP-LISTEN:7000,reuseaddr TCP:$TCPLAB_PEER'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if dash < 0 || dash == len(args) {
				return usageError{errors.New("exec needs the program after --: tcplab exec [SCENARIO] -- CMD [ARGS...]")}
			}
			if dash > 1 {
				return usageError{fmt.Errorf("exec takes at most one scenario before --, got %d: %s", dash, strings.Join(args[:dash], " "))}
			}
			if side != "client" && side != "server" && side != "middle" {
				return usageError{fmt.Errorf("--side %q: want client, server or middle", side)}
			}
			if f.kernel != "" && side == "middle" {
				return usageError{errors.New("--side middle puts your program between two gVisor hosts as the relay; --kernel does not apply (the relay's sockets are the kernel's)")}
			}
			if side == "middle" && (f.format == "ladder" || f.svg != "") {
				return usageError{errors.New("--side middle has three hosts (client, relay, server); the ladder and --svg draw two: use --format text or json")}
			}
			if f.kernel != "" {
				return usageError{errors.New("exec puts your program on one side; --kernel does not apply")}
			}
			if f.wire != "tun" {
				return usageError{errors.New("exec needs --wire tun: the program's sockets are the kernel's, in the lab namespace")}
			}
			x := &execRun{side: side, port: port, argv: args[dash:], stdin: env.stdin(), stderr: env.Stderr}
			name := ""
			if dash == 1 {
				name = args[0]
				f.inputs = []string{name}
			}
			if err := f.validate(); err != nil {
				return err
			}
			if out != "" {
				if err := checkOutput("--out", out, f.inputs); err != nil {
					return err
				}
			}
			s, err := x.script(name, env)
			if err != nil {
				return err
			}
			if err := f.checkCapture(name); err != nil {
				return err
			}
			if env.Program == nil {
				return errors.New("exec is not available in this build")
			}
			if x.path, err = exec.LookPath(x.argv[0]); err != nil {
				return programExit{code: ExitNoProgram, msg: fmt.Sprintf("exec: cannot run %q: %v", x.argv[0], unwrapPathErr(err))}
			}
			// The program writes to tcplab's standard output itself
			// (a terminal stays a terminal); the trace goes elsewhere.
			x.stdout = unwrap(env.Stdout)
			tenv := *env
			tenv.Stdout = &checkedWriter{w: env.Stderr}
			if out != "" {
				file, err := os.Create(out)
				if err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				defer file.Close()
				tenv.Stdout = &checkedWriter{w: file}
			}
			f.prog = x
			ctx, stop := watch(cmd.Context())
			defer stop()
			res, events, err := runOne(ctx, &tenv, &f, s, true)
			if err != nil {
				if ctx.Err() != nil {
					return interrupted{}
				}
				return err
			}
			if cw := tenv.Stdout.(*checkedWriter); cw.err != nil {
				return fmt.Errorf("write the trace: %w", cw.err)
			}
			if err := writeExtras(&f, events, s.Name); err != nil {
				return err
			}
			x.say(events, res.Interrupted)
			if x.relay != nil && out != "" {
				x.relay.tell(env.Stderr) // the trace is in the file; the verdicts here too
			}
			if res.Interrupted && x.builtin != "" {
				fmt.Fprintf(env.Stderr, "# %s: interrupted\n", x.builtin)
				return interrupted{}
			}
			report(env.Stderr, res, events)
			if x.startErr != nil {
				// Found, but it could not be run (not an executable,
				// gone meanwhile): as a program not found.
				var pe *os.PathError
				why := x.startErr
				if errors.As(why, &pe) {
					why = pe.Err
				}
				return programExit{code: ExitNoProgram, msg: fmt.Sprintf("exec: cannot run %q: %v", x.argv[0], why)}
			}
			if err := outcome(res); err != nil {
				return err
			}
			if x.proc == nil {
				return errors.New("the program was never started: the scenario did not reach it")
			}
			return programExit{code: x.code}
		},
	}
	f.add(cmd)
	f.addCaptureFlag(cmd)
	f.addLongRunFlag(cmd)
	cmd.Flags().StringVar(&side, "side", "client", "the side your program plays: client (it connects to $TCPLAB_PEER), server (it listens on $TCPLAB_LISTEN) or middle (a relay: it listens on $TCPLAB_LISTEN and connects to $TCPLAB_PEER)")
	cmd.Flags().StringVar(&out, "out", "", "write the trace to this file instead of standard error")
	cmd.Flags().Uint16Var(&port, "port", execPort, "the port a built-in peer listens on")
	return cmd
}

// unwrapPathErr drops exec.Error's repetition of the name.
func unwrapPathErr(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}

// script returns the scenario of the run: a built-in peer (an empty
// script named after it) or a scenario file checked for the side.
func (x *execRun) script(name string, env *Env) (*scenario.Script, error) {
	if name == "" && x.side == "client" {
		name = "article"
	}
	if name == "" && x.side == "middle" {
		return nil, usageError{errors.New("exec --side middle needs a scenario with a client and a server (server listen PORT, client connect server:PORT), e.g. examples/relay.lab: the relay goes between them")}
	}
	if name == "" {
		return nil, usageError{errors.New("exec --side server needs a scenario whose client connects to the program (client connect server:PORT)")}
	}
	h, isHTTP, err := parseHTTPPeer(name)
	if err != nil {
		return nil, usageError{err}
	}
	if _, ok := builtinPeers[name]; ok || isHTTP {
		if x.side != "client" {
			return nil, usageError{fmt.Errorf("the built-in peer %s is a server: use it with --side client (--side middle needs a scenario with both hosts)", name)}
		}
		x.builtin, x.http = name, h
		if isHTTP {
			x.builtin = "http"
		}
		return &scenario.Script{Name: name}, nil
	}
	s, err := load(name, env.stdin())
	if err != nil {
		return nil, err
	}
	if s.Kernel != "" {
		return nil, usageError{fmt.Errorf("scenario %s sets config kernel: with exec, your program is the Linux side", s.Name)}
	}
	if x.side == "middle" {
		if err := x.scriptMiddle(s); err != nil {
			return nil, err
		}
		return s, nil
	}
	connects := false
	for _, st := range s.Steps {
		c, ok := st.(*scenario.Call)
		if !ok {
			continue
		}
		if c.Host == x.side {
			return nil, usageError{fmt.Errorf("%s: %q: your program plays the %s; the scenario may only drive the other host", c.Position(), c.String(), x.side)}
		}
		if c.Op == "connect" && !connects {
			x.port, connects = c.Port, true
		}
	}
	if x.side == "server" && !connects {
		return nil, usageError{fmt.Errorf("scenario %s never connects the client: with --side server it must (client connect server:PORT)", s.Name)}
	}
	return s, nil
}

// start starts the program once (with env naming its peer or its
// address), and says so.
func (x *execRun) start(w stack.Wire, penv *ProgramEnv, key string, addr netip.AddrPort) error {
	x.startOnce.Do(func() {
		cmd := exec.Command(x.path, x.argv[1:]...)
		cmd.Args[0] = x.argv[0]
		cmd.Env = append(append(os.Environ(), key+"="+addr.String()), x.env...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = x.stdin, x.stdout, x.stderr
		p, err := penv.Start(w, cmd)
		if err != nil {
			x.startErr = err
			return
		}
		x.proc = p
		fmt.Fprintf(x.stderr, "# program %s (pid %d) runs in the lab namespace with %s\n", strings.Join(x.argv, " "), p.Pid(), strings.Join(append([]string{key + "=" + addr.String()}, x.env...), " "))
	})
	return x.startErr
}

// say tells how the program ended, and when it failed without ever
// touching the lab, that it did.
func (x *execRun) say(events []trace.Event, interrupted bool) {
	if x.proc == nil || x.status == "" {
		return
	}
	fmt.Fprintf(x.stderr, "# program %s %s\n", x.argv[0], x.status)
	if x.code == 0 || x.stopped || interrupted {
		return
	}
	host := x.side
	if x.side == "middle" {
		host = relayHost
	}
	for _, e := range events {
		if e.Host == host && e.Kind == trace.Segment {
			return
		}
	}
	what := "connected to $TCPLAB_PEER"
	if x.side != "client" {
		what = "accepted a connection on $TCPLAB_LISTEN"
	}
	fmt.Fprintf(x.stderr, "tcplab: the program never %s: it failed on its own (its messages, if any, are above)\n", what)
}

// finish waits for the program and records how it ended.
func (x *execRun) finish() {
	if x.proc == nil {
		return
	}
	st, ran, err := x.proc.Wait()
	switch {
	case err != nil:
		x.status, x.code = "could not be waited for: "+err.Error(), ExitFailure
	case st.Exited():
		x.status, x.code = fmt.Sprintf("exited with status %d after %.2fs", st.ExitStatus(), ran.Seconds()), st.ExitStatus()
	default:
		sig := st.Signal()
		x.status, x.code = fmt.Sprintf("was killed by signal %d (%v) after %.2fs", int(sig), sig, ran.Seconds()), 128+int(sig)
	}
	if x.stopped {
		x.status += ", stopped by tcplab when the scenario ended"
		x.code = 0
	}
	if l, ok := x.proc.(interface{ Leftovers() []int }); ok {
		if pids := l.Leftovers(); len(pids) > 0 {
			what := fmt.Sprintf("%d processes", len(pids))
			if len(pids) == 1 {
				what = "1 process"
			}
			x.status += fmt.Sprintf("; it left %s running in the lab namespace, killed then (pid %s)", what, strings.Trim(fmt.Sprint(pids), "[]"))
		}
	}
}

// drive runs the program against the scenario (or built-in peer) on sl, in
// which the program's side is already the program peer. It returns once
// the program has exited and the lab is quiet.
func (x *execRun) drive(ctx context.Context, env *Env, lab *stack.Lab, sl scenario.Lab, s *scenario.Script, opt scenario.Options) *scenario.Result {
	defer func() {
		if x.proc != nil {
			select {
			case <-x.proc.Done():
			default:
				x.proc.Stop(programStopWait) // interrupted, or a bug below
			}
		}
	}()
	res := &scenario.Result{Script: s}
	penv := env.Program
	stopped := func(where string, err error) *scenario.Result {
		res.Failures = append(res.Failures, execFailure(where, err))
		res.Stopped = true
		return res
	}
	if x.builtin != "" {
		x.rec = lab.Trace
		srv := sl.Server
		l, err := srv.Listen(x.port, 0)
		if err != nil {
			return stopped("server listen", err)
		}
		if err := x.start(lab.Wire, penv, "TCPLAB_PEER", netip.AddrPortFrom(srv.Addr(), x.port)); err != nil {
			l.Close()
			return stopped("start the program", err)
		}
		serveErr := x.serve(ctx, l, opt)
		if serveErr != nil && ctx.Err() == nil {
			lab.Trace.Emit(trace.Event{Host: "server", Kind: trace.Note, Text: "the built-in peer stopped: " + serveErr.Error()})
		}
		if ctx.Err() != nil {
			res.Interrupted = true
			x.proc.Stop(programStopWait)
		}
		quiet(ctx, lab.Trace, 100*time.Millisecond)
		x.finish()
		return res
	}

	// A scenario: split off the expectations at its end, which are
	// checked once the program has exited.
	body, tail := s.Steps, []scenario.Step(nil)
	for len(body) > 0 {
		if _, ok := body[len(body)-1].(*scenario.Expect); !ok {
			break
		}
		body, tail = body[:len(body)-1], append([]scenario.Step{body[len(body)-1]}, tail...)
	}
	main := *s
	main.Steps = body
	if x.side == "client" {
		hook := &listenHook{Peer: sl.Server, onListen: func(port uint16) error {
			return x.start(lab.Wire, penv, "TCPLAB_PEER", netip.AddrPortFrom(sl.Server.Addr(), port))
		}}
		sl.Server = hook
		res = scenario.Run(ctx, &main, sl, opt)
		if x.proc == nil && x.startErr == nil && ctx.Err() == nil {
			// The scenario never listened: start the program anyway.
			x.start(lab.Wire, penv, "TCPLAB_PEER", netip.AddrPortFrom(sl.Server.Addr(), x.port))
		}
	} else {
		listen := netip.AddrPortFrom(sl.Server.Addr(), x.port)
		var to netip.Addr
		if x.relay != nil {
			var peer netip.AddrPort
			listen, peer = x.relay.addrs(x, sl)
			to = listen.Addr()
			x.env = []string{"TCPLAB_PEER=" + peer.String()}
		}
		if err := x.start(lab.Wire, penv, "TCPLAB_LISTEN", listen); err != nil {
			return stopped("start the program", err)
		}
		hook := &dialHook{Peer: sl.Client, to: to, wait: func(ctx context.Context) error {
			return x.waitListening(ctx, lab.Wire, penv, listen, opt.StepTimeout)
		}}
		sl.Client = hook
		// The hook's own timeout (the step timeout) must end the dial
		// before the runner reports it as still blocked: its error says
		// why (the program did not listen).
		ropt := opt
		ropt.StepTimeout += 250 * time.Millisecond
		res = scenario.Run(ctx, &main, sl, ropt)
		if x.proc != nil && ctx.Err() == nil {
			select {
			case <-x.proc.Done():
			default:
				quiet(ctx, lab.Trace, 100*time.Millisecond)
				x.stopped = true
				if x.relay != nil {
					x.relay.stopAt = lab.Trace.Emit(trace.Event{Host: relayHost, Kind: trace.Note, Text: "the scenario has ended and the relay still runs: tcplab stops it (SIGTERM)"})
				}
				x.proc.Stop(programStopWait)
			}
		}
	}
	res.Script = s
	if x.startErr != nil {
		res.Failures = append(res.Failures, execFailure("start the program", x.startErr))
		res.Stopped = true
		return res
	}
	if x.proc != nil {
		select {
		case <-x.proc.Done():
		case <-ctx.Done():
		}
	}
	if ctx.Err() != nil {
		if !res.Interrupted {
			res.Interrupted, res.Where = true, lastPos(s)
		}
		return res
	}
	quiet(ctx, lab.Trace, 100*time.Millisecond)
	x.finish()
	if x.relay != nil {
		x.relay.sync() // the relay's last events are in the trace before they are checked
	}
	if len(tail) > 0 {
		t := *s
		t.Steps = tail
		r2 := scenario.Run(ctx, &t, sl, opt)
		res.Failures = append(res.Failures, r2.Failures...)
		res.Checked += r2.Checked
		res.Interrupted = res.Interrupted || r2.Interrupted
		if r2.Interrupted {
			res.Where = r2.Where
		}
	}
	return res
}

// statusText says how a process ended, as os.ProcessState's String does.
func statusText(st syscall.WaitStatus) string {
	if st.Exited() {
		return fmt.Sprintf("exit status %d", st.ExitStatus())
	}
	return "signal: " + st.Signal().String()
}

// execFailure is a step of exec's own that could not run.
func execFailure(what string, err error) scenario.Failure {
	return scenario.Failure{Pos: scenario.Pos{File: "exec"}, Step: what, Msg: err.Error(), Stop: true}
}

func lastPos(s *scenario.Script) scenario.Pos {
	if len(s.Steps) == 0 {
		return scenario.Pos{File: s.Name}
	}
	return s.Steps[len(s.Steps)-1].Position()
}

// waitListening waits until the program listens on listen, at most
// timeout, failing at once when the program has exited.
func (x *execRun) waitListening(ctx context.Context, w stack.Wire, penv *ProgramEnv, listen netip.AddrPort, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	found := make(chan error, 1)
	go func() { found <- penv.WaitListening(ctx, w, listen.Port()) }()
	select {
	case err := <-found:
		if err == nil {
			return nil
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("the program did not listen on %v (TCPLAB_LISTEN) within %s; it is still running", listen, timeout)
		}
		return err
	case <-x.proc.Done():
		cancel()
		<-found
		st, ran, _ := x.proc.Wait()
		return fmt.Errorf("the program exited (%s, after %.2fs) before it listened on %v (TCPLAB_LISTEN)", statusText(st), ran.Seconds(), listen)
	}
}

// serve runs the built-in peer on l: one handler per accepted connection,
// until the program has exited and every handler has finished (at most
// opt.StepTimeout more: article works 5 s), or ctx ends.
func (x *execRun) serve(ctx context.Context, l stack.ListenSocket, opt scenario.Options) error {
	actx, stopAccept := context.WithCancel(ctx)
	defer stopAccept()
	var wg sync.WaitGroup
	defer wg.Wait()
	accepted := make(chan stack.Socket)
	acceptErr := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept(actx)
			if err != nil {
				acceptErr <- err
				return
			}
			select {
			case accepted <- c:
			case <-actx.Done():
				c.Close()
				acceptErr <- actx.Err()
				return
			}
		}
	}()
	handlers := make(chan struct{}, 64)
	live := 0
	done := x.proc.Done()
	var err error
	for done != nil || live > 0 {
		select {
		case c := <-accepted:
			live++
			wg.Add(1)
			go func() {
				defer wg.Done()
				x.handle(ctx, c, opt)
				handlers <- struct{}{}
			}()
		case <-handlers:
			live--
		case <-done:
			done = nil
		case e := <-acceptErr:
			err = e
			acceptErr = nil
		case <-ctx.Done():
			l.Close()
			return ctx.Err()
		}
	}
	stopAccept()
	l.Close()
	if acceptErr != nil {
		<-acceptErr
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// handle plays the built-in peer on one connection, then closes it.
func (x *execRun) handle(ctx context.Context, c stack.Socket, opt scenario.Options) {
	defer c.Close()
	buf := make([]byte, 64<<10)
	read := func() (int, bool) {
		rctx, cancel := context.WithTimeout(ctx, opt.StepTimeout+5*time.Second)
		defer cancel()
		n, err := c.Read(rctx, buf)
		return n, err == nil && n > 0
	}
	switch x.builtin {
	case "article":
		n, ok := read()
		if !ok {
			return
		}
		msg := strings.TrimRight(string(buf[:n]), "\r\n")
		t := time.NewTimer(5 * time.Second)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		if _, err := c.Write(ctx, []byte("Hi, "+msg)); err != nil {
			return
		}
		for {
			if _, ok := read(); !ok {
				return
			}
		}
	case "echo":
		for {
			n, ok := read()
			if !ok {
				return
			}
			if _, err := c.Write(ctx, buf[:n]); err != nil {
				return
			}
		}
	case "sink":
		for {
			if _, ok := read(); !ok {
				return
			}
		}
	case "http":
		x.http.serve(ctx, c, opt.StepTimeout+5*time.Second, func(text string) {
			x.rec.Emit(trace.Event{Host: "server", Kind: trace.Note, Conn: c.ID(), Text: text})
		})
	}
}

// quiet waits until rec has recorded nothing for d (at most 5 s).
func quiet(ctx context.Context, rec *trace.Recorder, d time.Duration) {
	deadline := time.Now().Add(5 * time.Second)
	last, n := time.Now(), rec.Len()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(d / 5)
		if m := rec.Len(); m != n {
			last, n = time.Now(), m
			continue
		}
		if time.Since(last) >= d {
			return
		}
	}
}

// listenHook is a peer that starts the program once it listens.
type listenHook struct {
	stack.Peer
	onListen func(port uint16) error
}

func (h *listenHook) Listen(port uint16, backlog int) (stack.ListenSocket, error) {
	l, err := h.Peer.Listen(port, backlog)
	if err == nil {
		if serr := h.onListen(port); serr != nil {
			return l, nil // reported by drive
		}
	}
	return l, err
}

// dialHook is a peer whose dials wait for the program to listen.
type dialHook struct {
	stack.Peer
	wait func(ctx context.Context) error
	to   netip.Addr // if valid, where every dial goes instead (the relay)
	once sync.Once
	err  error
}

func (h *dialHook) Dial(ctx context.Context, addr netip.AddrPort, localPort uint16) (stack.Socket, error) {
	h.once.Do(func() { h.err = h.wait(ctx) })
	if h.err != nil {
		return nil, h.err
	}
	if h.to.IsValid() {
		addr = netip.AddrPortFrom(h.to, addr.Port())
	}
	return h.Peer.Dial(ctx, addr, localPort)
}
