package scenario

// Reference is the language at a glance, for `tcplab syntax`; the README
// has the long form.
const Reference = `A .lab file: one step per line, for both hosts; # starts a comment. The
comment block at the top is the scenario's explanation ("name: summary" first).
Steps run in order; before each one the lab settles (nothing in flight).

Socket calls (HOST is client or server):
  HOST listen PORT [backlog N] [as NAME]
  HOST connect PEER:PORT [from PORT] [as NAME]      e.g. client connect server:9527
  HOST accept [on LISTENER] [as NAME]
  HOST write "text" | HOST write N [bytes]
  HOST read [N] | HOST read all
  HOST shutdown rd|wr|rdwr
  HOST close [on NAME]                              (a listener too: close on l1)
  HOST set linger off|SECONDS | set nodelay on|off | set sndbuf N | set rcvbuf N
  HOST set keepalive on|off                         SO_KEEPALIVE (timers: config below)
  ... on NAME                                       use socket NAME (c1, c2, or an "as" name)

Sockets before they connect, non-blocking calls, calls in the background:
  HOST socket as NAME                               socket(2); then, before connect/listen:
  HOST set OPTION VALUE on NAME                     options (on a listener too: accepted sockets
  HOST bind PORT|HOST:PORT on NAME                    inherit what the stack passes on)
  HOST listen [PORT] [backlog N] on NAME | HOST connect PEER:PORT on NAME
  HOST set nonblock on|off [on NAME]                O_NONBLOCK: read/write/accept say EAGAIN,
                                                    connect EINPROGRESS, instead of waiting
  HOST CALL ... [expect ...] &                      run in the background; its expectation is
                                                    checked when it returns
  wait NAME | wait client|server | wait all         wait (at most --step-timeout) for background
                                                    calls: NAME is the call's "as NAME" or "on NAME"
  ... expect blocked                                the call is still blocked when waited for or
                                                    at the end
  A call still blocked after --step-timeout (or at the end) is reported "still blocked
  after D" with its expectation; the script goes on. At the end it is abandoned.

Time, faults, settings:
  [HOST] sleep 5s          wait quiet [D]          note "text"
  wire hold | wire release | wire drop HOST FLAGS [count N]
  config timewait D | config finwait2 D | config kernel client|server

Knobs (each noted in the trace; an unknown key or bad value is an error listing the valid ones):
  config gvisor KEY VALUE   congestion-control reno|cubic, sack on|off, nagle on|off,
      rack on|off, moderate-receive-buffer on|off, rto-min D, rto-max D, max-retries N,
      syn-retries N, tw-reuse off|global|loopback, syn-cookies auto|always,
      keepalive-idle D, keepalive-interval D, keepalive-count N (for set keepalive on).
      gVisor has no delayed-ack, window-scaling or timestamps setting (always on/none).
  config kernel KEY VALUE   a sysctl in the lab namespace only, for a kernel peer:
      tcp_rfc1337, tcp_abort_on_overflow, tcp_fin_timeout, tcp_keepalive_time,
      tcp_keepalive_intvl, tcp_keepalive_probes, tcp_syncookies, tcp_tw_reuse,
      tcp_max_syn_backlog, somaxconn, tcp_sack, tcp_timestamps, tcp_window_scaling,
      tcp_orphan_retries, tcp_retries2 (short or dotted name; integers, seconds as 5 or 5s).
      Without --kernel it is noted as not applied (the same file runs both ways).
  e.g. config gvisor keepalive-idle 2s        config kernel tcp_rfc1337 1
  needs exact-segments "why"   the story depends on exact segment counts (one RST,
      never retransmitted): check --net skips the scenario and prints why

Injection (a crafted segment delivered to HOST as if its peer had sent it):
  inject HOST FLAGS [seq N] [ack N] [win N] [data "text"] [on NAME] [abs]
  e.g. inject server R seq 1000        (in-window, not RCV.NXT: a challenge ACK)
  seq/ack relative as tcpdump prints them (abs: absolute); defaults: seq RCV.NXT,
  ack SND.NXT (with "."), win 65535. Memory wire: onto HOST's link; TUN: a raw
  socket in the lab namespace (a kernel peer receives a real packet).

Network conditions (netem's model; both directions unless one is named; each line
changes only what it names, "clear" first resets):
  net [client->server|server->client] [clear] loss P% | delay D [jitter D] |
      reorder P% | duplicate P% | corrupt P% | rate R
  e.g. net loss 5%        net client->server delay 100ms jitter 10ms
       net server->client rate 1mbit duplicate 1%        net clear
  --net "SPEC" (run, check) sets them for the whole run. TUN wire: the kernel's
  netem on the receiving host's TUN device, not toward a kernel peer (without
  sch_netem: the same model in userspace, toward a kernel peer too). Memory
  wire: the model in virtual time, drawn from --seed. The trace notes each
  segment lost, reordered, duplicated, corrupted or delayed beyond D (netem
  does not tell).

Expectations, after a call:
  ... expect "text" | expect EOF | expect ok | expect error ECONNRESET | expect N bytes | expect blocked
  ... expect [OUTCOME] took D1..D2     how long the call took, on the lab's clock
  e.g. client close expect ok took 2s..3s   (SO_LINGER 2 and unacknowledged data)
and on their own line (checked against the trace so far):
  expect HOST sent|received|refused FLAGS [seq N] [ack N] [win N] [len N] [count N | never]
      [reason ~ "text"] [before|after HOST sent|received|refused FLAGS ...]
  e.g. expect client sent F. seq 4 ack 1     expect server sent . win 0     expect client sent P. len >0
       expect server refused R reason ~ "challenge" after client sent P.
  seq/ack relative to each side's ISN as tcpdump prints them; N may be =N >N <N >=N <=N !=N.
  refused: an arrival the stack did not accept (its verdict; reason ~ matches why).
  before/after: its first match comes before/after the other's first (after: which must exist).
  ... within D        (any expectation but never) wait up to D on the lab's clock for it to
      hold, e.g. expect client final FIN-WAIT-2 within 2s (a lost FIN is retransmitted)
  expect HOST state STATE [never]      expect HOST final STATE
  expect HOST buffer snd|rcv N         ... on NAME
  expect relay sent|received|state ...   the relay of tcplab exec --side middle

FLAGS are tcpdump's (S, S., ., P., F., R, R.): a pattern needs every flag it names
and no SYN/FIN/RST it leaves out; "." alone is a pure ACK. STATES: SYN-SENT,
SYN-RECEIVED, ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2, CLOSE-WAIT, CLOSING, LAST-ACK,
TIME-WAIT, CLOSED, LISTEN.

Limits (out of range is an error naming the limit): write N 0-1 TiB (made as it
is written, 1 MiB per write call); read N 1-16 MiB; ports 1-65535; backlog
0-65535; count N 0-1000000 (wire drop: 1-1000000); expect N bytes and buffer N
0-1 TiB; linger 0-86400 s; sndbuf/rcvbuf 1-256 MiB; durations 0-24h; a line
1 MiB; a scenario 4 MiB and 100000 steps, at least one; inject: seq/ack -2147483648-4294967295,
win 0-65535, data at most 1460 bytes; net: percentages
0-100%, delay and jitter 0-10s (jitter and reorder need a delay), rate 1kbit-100gbit
(units bit, kbit, mbit, gbit). Flags name each letter
once; an "as" name is given once per host. "-" as the file reads standard input.

Start from a built-in one: tcplab show close > my.lab; tcplab run my.lab --wire memory
`
