// SPDX-License-Identifier: GPL-2.0
//
// calltrace: the TCP socket calls of the processes inside one network
// namespace (a program run by tcplab exec), from the raw syscall
// tracepoints. Every event is first filtered to tasks of the namespace whose
// inode is netns_ino and to thread groups other than tcplab's own; calls on
// descriptors that are not TCP sockets are dropped in the kernel.
// x86-64 only: the arguments are read from struct pt_regs.

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "socktypes.h" // the socket and namespace types, shared with the other program

char __license[] SEC("license") = "GPL";

#define IPPROTO_TCP 6
#define IPPROTO_MPTCP 262
#define S_IFMT 00170000
#define S_IFSOCK 0140000

// ---- kernel types (CO-RE: only the fields used) ----

struct pt_regs {
	unsigned long di;
	unsigned long si;
	unsigned long dx;
	unsigned long r10;
	unsigned long r8;
	unsigned long orig_ax;
} __attribute__((preserve_access_index));

struct nsproxy {
	struct net *net_ns;
} __attribute__((preserve_access_index));

struct inode {
	unsigned short i_mode;
} __attribute__((preserve_access_index));

struct file {
	struct inode *f_inode;
	void *private_data;
} __attribute__((preserve_access_index));

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} __attribute__((preserve_access_index));

struct files_struct {
	struct fdtable *fdt;
} __attribute__((preserve_access_index));

struct task_struct {
	struct nsproxy *nsproxy;
	struct files_struct *files;
} __attribute__((preserve_access_index));

struct socket {
	struct sock *sk;
} __attribute__((preserve_access_index));

// ---- configuration, set by the Go side before loading ----

volatile const __u32 netns_ino = 0;
volatile const __u32 self_tgid = 0;
volatile const __u64 wake_bytes = 0; // wake the reader past this much data
volatile const __s64 nr_read = -1, nr_write = -1, nr_close = -1, nr_connect = -1, nr_accept = -1,
		     nr_sendto = -1, nr_recvfrom = -1, nr_shutdown = -1, nr_accept4 = -1, nr_bind = -1,
		     nr_listen = -1, nr_setsockopt = -1, nr_sendmsg = -1, nr_recvmsg = -1, nr_readv = -1,
		     nr_writev = -1;

// At most this many buffers of a readv, writev, sendmsg or recvmsg are
// summed into its length (the count says how many there were).
#define MAX_IOV 16

enum call {
	C_READ = 1,
	C_WRITE,
	C_CLOSE,
	C_CONNECT,
	C_ACCEPT,
	C_SENDTO,
	C_RECVFROM,
	C_SHUTDOWN,
	C_ACCEPT4,
	C_BIND,
	C_LISTEN,
	C_SETSOCKOPT,
	C_SENDMSG,
	C_RECVMSG,
	C_READV,
	C_WRITEV,
};

// A call in progress, by thread.
struct pending {
	__u64 enter;
	__u64 arg;
	__u64 arg2;
	__u64 arg3;
	__s32 val[2];
	__s32 fd;
	__u32 call;
	__u32 saddr, daddr;
	__u16 sport, dport;
	__u32 unread;
	__u32 have_sock;
};

// One event per call, at its return (phase 1); close and shutdown also at
// their entry (phase 0), before the FIN or RST they cause leaves.
struct call_event {
	__u64 enter;
	__u64 exit;
	__s64 ret;
	__u64 arg;
	__u64 arg2;
	__u64 arg3;
	__s32 val[2];
	__u32 tgid;
	__u32 tid;
	__s32 fd;
	__u32 call;
	__u32 saddr, daddr;
	__u16 sport, dport;
	__u32 unread;
	__u32 have_sock;
	__u32 phase;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct pending);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} calls SEC(".maps");

// Calls the ring buffer had no room for (the reader fell behind).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

// Keeps struct call_event in the BTF for bpf2go.
const struct call_event *unused_call_event __attribute__((unused));

static __always_inline __u32 call_of(long id)
{
	if (id == nr_read) return C_READ;
	if (id == nr_write) return C_WRITE;
	if (id == nr_close) return C_CLOSE;
	if (id == nr_connect) return C_CONNECT;
	if (id == nr_accept) return C_ACCEPT;
	if (id == nr_sendto) return C_SENDTO;
	if (id == nr_recvfrom) return C_RECVFROM;
	if (id == nr_shutdown) return C_SHUTDOWN;
	if (id == nr_accept4) return C_ACCEPT4;
	if (id == nr_bind) return C_BIND;
	if (id == nr_listen) return C_LISTEN;
	if (id == nr_setsockopt) return C_SETSOCKOPT;
	if (id == nr_sendmsg) return C_SENDMSG;
	if (id == nr_recvmsg) return C_RECVMSG;
	if (id == nr_readv) return C_READV;
	if (id == nr_writev) return C_WRITEV;
	return 0;
}

static __always_inline int in_lab(struct task_struct *task)
{
	if ((bpf_get_current_pid_tgid() >> 32) == self_tgid)
		return 0;
	return BPF_CORE_READ(task, nsproxy, net_ns, ns.inum) == netns_ino;
}

// tcp_of returns the TCP socket behind descriptor fd of task, or NULL. An
// MPTCP socket counts (Go listens with MPTCP by default since 1.24; what
// it accepts from a plain TCP client is a TCP socket).
static __always_inline struct sock *tcp_of(struct task_struct *task, int fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return 0;
	if ((BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return 0;
	struct socket *so = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(so, sk);
	if (!sk)
		return 0;
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	if (proto != IPPROTO_TCP && proto != IPPROTO_MPTCP)
		return 0;
	return sk;
}

static __always_inline void fill(struct pending *p, struct sock *sk)
{
	p->saddr = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
	p->daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	p->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	p->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	p->have_sock = 1;
}

// iov_bytes returns the total length of the first MAX_IOV of n buffers at
// iov (struct iovec in user memory).
static __always_inline __u64 iov_bytes(const void *iov, __u64 n)
{
	struct {
		__u64 base;
		__u64 len;
	} v;
	__u64 total = 0;
#pragma unroll
	for (int i = 0; i < MAX_IOV; i++) {
		if (i >= n)
			break;
		if (bpf_probe_read_user(&v, sizeof(v), iov + i * sizeof(v)))
			break;
		total += v.len;
	}
	return total;
}

// sockaddr_in reads an IPv4 address asked of connect or bind into addr
// and port; it returns 0 when there was one.
static __always_inline int sockaddr_in(const void *uaddr, __u32 *addr, __u16 *port)
{
	struct {
		__u16 family;
		__be16 port;
		__be32 addr;
	} sa = {};
	if (bpf_probe_read_user(&sa, sizeof(sa), uaddr) || sa.family != 2)
		return -1;
	*addr = sa.addr;
	*port = bpf_ntohs(sa.port);
	return 0;
}

static __always_inline void emit(struct pending *p, __u64 exit, __s64 ret, __u32 phase)
{
	struct call_event *e = bpf_ringbuf_reserve(&calls, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&lost, &zero);
		if (n)
			(*n)++;
		return;
	}
	__u64 id = bpf_get_current_pid_tgid();
	e->enter = p->enter;
	e->exit = exit;
	e->ret = ret;
	e->arg = p->arg;
	e->arg2 = p->arg2;
	e->arg3 = p->arg3;
	e->val[0] = p->val[0];
	e->val[1] = p->val[1];
	e->tgid = id >> 32;
	e->tid = (__u32)id;
	e->fd = p->fd;
	e->call = p->call;
	e->saddr = p->saddr;
	e->daddr = p->daddr;
	e->sport = p->sport;
	e->dport = p->dport;
	e->unread = p->unread;
	e->have_sock = p->have_sock;
	e->phase = phase;
	// A wakeup per call would cost the program an irq_work and tcplab's
	// reader a context switch, several microseconds a call: the reader
	// polls on a timer, and is woken only for the entry of a close or
	// shutdown (a FIN or RST waits for it) or once wake_bytes wait.
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (phase == 0 || bpf_ringbuf_query(&calls, BPF_RB_AVAIL_DATA) >= wake_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long id)
{
	__u32 call = call_of(id);
	if (!call)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	if (!in_lab(task))
		return 0;
	struct pending p = {};
	p.enter = bpf_ktime_get_ns();
	p.call = call;
	p.fd = (int)BPF_CORE_READ(regs, di);
	struct sock *sk = tcp_of(task, p.fd);
	if (!sk)
		return 0;
	switch (call) {
	case C_SHUTDOWN:
	case C_LISTEN:
		p.arg = BPF_CORE_READ(regs, si);
		break;
	case C_READ:
	case C_WRITE:
	case C_SENDTO:
	case C_RECVFROM:
		p.arg = BPF_CORE_READ(regs, dx);
		break;
	case C_READV:
	case C_WRITEV:
		p.arg2 = BPF_CORE_READ(regs, dx);
		p.arg = iov_bytes((void *)BPF_CORE_READ(regs, si), p.arg2);
		break;
	case C_SENDMSG:
	case C_RECVMSG: {
		// struct msghdr: msg_iov at 16, msg_iovlen at 24.
		struct {
			__u64 name;
			__u32 namelen, pad;
			__u64 iov;
			__u64 iovlen;
		} m = {};
		if (!bpf_probe_read_user(&m, sizeof(m), (void *)BPF_CORE_READ(regs, si))) {
			p.arg2 = m.iovlen;
			p.arg = iov_bytes((void *)m.iov, m.iovlen);
		}
		p.arg3 = BPF_CORE_READ(regs, dx); // flags
		break;
	}
	case C_SETSOCKOPT: {
		// level, optname, and the first 8 bytes of the value (an int,
		// or struct linger's l_onoff and l_linger).
		p.arg = BPF_CORE_READ(regs, si);
		p.arg2 = BPF_CORE_READ(regs, dx);
		p.arg3 = BPF_CORE_READ(regs, r8);
		void *uval = (void *)BPF_CORE_READ(regs, r10);
		if (p.arg3 >= 8)
			bpf_probe_read_user(p.val, 8, uval);
		else if (p.arg3 >= 4)
			bpf_probe_read_user(p.val, 4, uval);
		break;
	}
	}
	fill(&p, sk);
	// The destination as asked: a refused connect clears the socket's.
	if (call == C_CONNECT)
		sockaddr_in((void *)BPF_CORE_READ(regs, si), &p.daddr, &p.dport);
	// The address as asked: the socket has none yet.
	if (call == C_BIND && sockaddr_in((void *)BPF_CORE_READ(regs, si), &p.saddr, &p.sport))
		p.have_sock = 0; // not IPv4: no address to show
	if (call == C_CLOSE && BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP) {
		struct tcp_sock *tp = (struct tcp_sock *)sk;
		p.unread = BPF_CORE_READ(tp, rcv_nxt) - BPF_CORE_READ(tp, copied_seq);
	}
	if (call == C_CLOSE || call == C_SHUTDOWN)
		emit(&p, 0, 0, 0);
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	bpf_map_update_elem(&pending, &tid, &p, BPF_ANY);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	if (!call_of(BPF_CORE_READ(regs, orig_ax)))
		return 0; // not a call we follow: no map lookup
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct pending *pp = bpf_map_lookup_elem(&pending, &tid);
	if (!pp)
		return 0;
	struct pending p = *pp;
	bpf_map_delete_elem(&pending, &tid);
	struct task_struct *task = bpf_get_current_task_btf();
	if (p.call == C_CONNECT) {
		struct sock *sk = tcp_of(task, p.fd);
		if (sk) {
			p.saddr = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
			p.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
		}
	}
	if ((p.call == C_ACCEPT || p.call == C_ACCEPT4) && ret >= 0) {
		struct sock *sk = tcp_of(task, (int)ret);
		if (sk)
			fill(&p, sk);
	}
	emit(&p, bpf_ktime_get_ns(), ret, 1);
	return 0;
}
