// SPDX-License-Identifier: GPL-2.0
//
// ktrace: what the Linux TCP stack does inside one network namespace, from
// the kernel's own tracepoints. Every program first checks that the socket
// or packet belongs to the namespace whose inode is netns_ino; nothing from
// another namespace reaches the ring buffer. Events are struct event (the Go
// side decodes them, see ktrace_linux.go).
//
// The kernel structures are declared here with just the fields read, marked
// preserve_access_index: libbpf (cilium/ebpf) relocates every access against
// the running kernel's BTF (CO-RE), so no vmlinux.h is needed.

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "socktypes.h" // the socket and namespace types, shared with the other program

char __license[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6

// ---- kernel types (CO-RE: only the fields used, matched by name) ----

struct inet_sock {
	__be16 inet_sport;
} __attribute__((preserve_access_index));

struct request_sock {
	struct sock_common __req_common;
} __attribute__((preserve_access_index));

struct tcp_request_sock {
	__u32 rcv_isn;
	__u32 snt_isn;
} __attribute__((preserve_access_index));

struct net_device {
	possible_net_t nd_net;
	int ifindex;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	char cb[48];
	unsigned int len;
	unsigned int data_len;
	__be16 protocol;
	__u16 transport_header;
	__u16 network_header;
	unsigned char *head;
	unsigned char *data;
} __attribute__((preserve_access_index));

// ---- configuration, set by the Go side before loading ----

volatile const __u32 netns_ino = 0;           // the namespace watched
volatile const __u32 drop_consumed = 0;       // SKB_CONSUMED in this kernel
volatile const __u32 drop_not_dropped_yet = 0; // SKB_NOT_DROPPED_YET
volatile const __u64 wake_bytes = 0;          // wake the reader past this much data

// ---- events ----

enum kind {
	K_STATE = 1,
	K_SEND_RESET,
	K_RECEIVE_RESET,
	K_RETRANSMIT,
	K_DESTROY,
	K_PROBE,
	K_SENT,
	K_RECEIVED,
	K_DROPPED,
};

// Event flags (struct event.flags).
#define F_LOCAL 1     // Sent, Dropped: a socket of the namespace sent the skb
#define F_HAVE_PKT 4  // ip/tcp hold headers of a packet
#define F_HAVE_SOCK 8 // addresses come from a socket
#define F_PAYLOAD_PERF 16 // payload bytes went to the payloads perf array

#define PAYLOAD_MAX 64

struct event {
	__u64 ts;      // bpf_ktime_get_ns (CLOCK_MONOTONIC)
	__u64 sk;      // socket address, 0 when none
	__u64 cookie;  // socket cookie (Probe)
	__u64 skb;     // skb address of a packet (pairs Received with Dropped)
	__u32 kind;
	__u32 reason;  // enum sk_rst_reason or enum skb_drop_reason
	__u32 ifindex;
	__u32 flags;   // F_*
	__u8 family;   // AF_INET / AF_INET6 of laddr/raddr
	__u8 oldstate;
	__u8 newstate;
	__u8 ihl;      // IP header length in bytes (IPv6: 40)
	__u16 lport;   // host order
	__u16 rport;
	__u8 laddr[16];
	__u8 raddr[16];
	// Packet: raw headers as on the wire; Retransmit: seq/end_seq/flags below.
	__u8 ip[40];   // IPv4 (first 20 bytes) or IPv6 header
	__u8 tcp[60];
	__u16 iplen;   // IP total length (IPv6: 40 + payload length)
	__u16 caplen;  // payload bytes captured
	__u8 payload[PAYLOAD_MAX];
	// Probe (tcp_sock) and Retransmit (seq, end_seq in snd_nxt/snd_una).
	__u32 snd_nxt;
	__u32 snd_una;
	__u32 rcv_nxt;
	__u32 snd_wnd;
	__u32 rcv_wnd;
	__u32 snd_cwnd;
	__u32 ssthresh;
	__u32 srtt_us;
	__u32 packets_out;
	__u32 retrans_out;
	__u32 mss;
	__u32 gso_len; // skb->len (bytes in the skb, all segments of a GSO packet)
};

// Force the type into BTF for bpf2go -type event.
const struct event *unused_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); // resized by the Go side
} events SEC(".maps");

// lost counts events the ring buffer had no room for.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

// payloads carries payload bytes that lie in an skb's page fragments (TCP
// puts sent data there), which only bpf_skb_output can copy: each sample is
// struct payload_meta followed by the skb's first off+len bytes from
// skb->data. The ring buffer event names it by (skb, ts).
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} payloads SEC(".maps");

// since_wake counts, per CPU, payload samples written since this CPU last
// woke the reader.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} since_wake SEC(".maps");

#define PAYLOADS_PER_WAKE 32

struct payload_meta {
	__u64 skb;
	__u64 ts;
	__u32 off; // payload offset from skb->data
	__u32 len;
};
const struct payload_meta *unused_payload_meta __attribute__((unused));

static __always_inline void count_lost(void)
{
	__u32 k = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &k);
	if (n)
		*n += 1;
}

static __always_inline struct event *reserve(__u32 kind)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts = bpf_ktime_get_ns();
	e->kind = kind;
	return e;
}

// submit commits e without waking the reader (a wakeup per event costs the
// kernel an irq_work and the reader a context switch) until wake_bytes are
// waiting, or until this CPU has written PAYLOADS_PER_WAKE payload samples
// since it last woke it (so the reader drains the small per-CPU perf
// buffers before they overflow); the reader also polls on a timer, so no
// event waits long.
static __always_inline void submit(struct event *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u32 k = 0;
	__u32 *n = bpf_map_lookup_elem(&since_wake, &k);
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wake_bytes || (n && *n >= PAYLOADS_PER_WAKE)) {
		flags = BPF_RB_FORCE_WAKEUP;
		if (n)
			*n = 0;
	}
	bpf_ringbuf_submit(e, flags);
}

static __always_inline int sk_in_ns(const struct sock *sk)
{
	return sk && sk->__sk_common.skc_net.net->ns.inum == netns_ino;
}

static __always_inline int dev_in_ns(const struct net_device *dev)
{
	return dev && dev->nd_net.net->ns.inum == netns_ino;
}

static __always_inline int sk_is_tcp(const struct sock *sk)
{
	return sk->sk_protocol == IPPROTO_TCP;
}

// fill_sock copies the socket's addresses, from its own point of view.
static __always_inline void fill_sock(struct event *e, const struct sock *sk)
{
	e->sk = (__u64)sk;
	e->family = sk->__sk_common.skc_family;
	e->newstate = sk->__sk_common.skc_state;
	// A full socket's source port survives inet_put_port (which zeroes
	// skc_num as the socket closes); time-wait and request sockets have
	// no inet_sock, only skc_num.
	if (e->newstate == 6 || e->newstate == 12)
		e->lport = sk->__sk_common.skc_num;
	else
		e->lport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	e->rport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (e->family == AF_INET6) {
		BPF_CORE_READ_INTO(&e->laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->raddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		__be32 a = sk->__sk_common.skc_rcv_saddr;
		__builtin_memcpy(e->laddr, &a, 4);
		a = sk->__sk_common.skc_daddr;
		__builtin_memcpy(e->raddr, &a, 4);
	}
	e->flags |= F_HAVE_SOCK;
}

// network_header returns where skb's IP header is, by skb->network_header,
// or 0 when that is unset.
static __always_inline unsigned char *network_header(const struct sk_buff *skb)
{
	unsigned char *head = skb->head;
	__u16 nh = skb->network_header;
	if (nh == 0xffff || !head)
		return 0;
	return head + nh;
}

// fill_pkt copies the IP (v4 without options, or v6) and TCP headers at ip
// and up to PAYLOAD_MAX payload bytes. It returns 0 when the skb is not a
// TCP packet (IPv6: directly after the fixed header, no extension headers).
static __always_inline int fill_pkt(struct event *e, const struct sk_buff *skb, unsigned char *ip)
{
	if (!ip)
		return 0;
	e->skb = (__u64)skb;
	if (bpf_probe_read_kernel(e->ip, 20, ip))
		return 0;
	__u32 ihl;
	if ((e->ip[0] >> 4) == 4) {
		if (e->ip[9] != IPPROTO_TCP)
			return 0;
		ihl = (e->ip[0] & 0xf) * 4;
		if (ihl < 20)
			return 0;
		e->iplen = ((__u16)e->ip[2] << 8) | e->ip[3];
	} else if ((e->ip[0] >> 4) == 6) {
		if (e->ip[6] != IPPROTO_TCP || bpf_probe_read_kernel(e->ip + 20, 20, ip + 20))
			return 0;
		ihl = 40;
		e->iplen = 40 + (((__u16)e->ip[4] << 8) | e->ip[5]);
	} else {
		return 0;
	}
	e->ihl = ihl;
	unsigned char *tcp = ip + ihl;
	if (bpf_probe_read_kernel(e->tcp, 20, tcp))
		return 0;
	__u32 doff = (e->tcp[12] >> 4) * 4;
	if (doff > 20 && doff <= 60)
		bpf_probe_read_kernel(e->tcp + 20, (doff - 20) & 63, tcp + 20);
	e->gso_len = skb->len;
	e->flags |= F_HAVE_PKT;

	// Payload: only what lies in the linear part of the skb.
	unsigned char *data = skb->data;
	__u32 headlen = skb->len - skb->data_len;
	unsigned char *pl = tcp + doff;
	unsigned char *end = data + headlen;
	__u32 plen = e->iplen > ihl + doff ? e->iplen - ihl - doff : 0;
	__u32 want = plen < PAYLOAD_MAX ? plen : PAYLOAD_MAX;
	if (want == 0)
		return 1;
	if (pl + want <= end) {
		if (bpf_probe_read_kernel(e->payload, want & (PAYLOAD_MAX * 2 - 1), pl) == 0)
			e->caplen = want;
		return 1;
	}
	// Paged: copy through bpf_skb_output (skb_copy_bits) to the perf array.
	if (pl < data)
		return 1;
	struct payload_meta m = {.skb = (__u64)skb, .ts = e->ts, .off = pl - data, .len = want};
	if (m.off > 0xffff)
		return 1;
	__u64 flags = BPF_F_CURRENT_CPU | ((__u64)(m.off + m.len) << 32);
	if (bpf_skb_output((void *)skb, &payloads, flags, &m, sizeof(m)) == 0) {
		e->flags |= F_PAYLOAD_PERF;
		__u32 k = 0;
		__u32 *c = bpf_map_lookup_elem(&since_wake, &k);
		if (c)
			*c += 1;
	} else {
		// The perf buffer was full: the event goes out without its
		// payload, and Lost says so at once (the perf ring's own count
		// reaches the reader only when it next drains the buffer).
		count_lost();
	}
	return 1;
}

// ---- socket events ----

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (!sk_in_ns(sk) || !sk_is_tcp(sk))
		return 0;
	struct event *e = reserve(K_STATE);
	if (!e)
		return 0;
	fill_sock(e, sk);
	e->oldstate = oldstate;
	e->newstate = newstate;
	submit(e);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tcp_send_reset, const struct sock *sk, const struct sk_buff *skb, int reason)
{
	if (sk) {
		if (!sk_in_ns(sk))
			return 0;
	} else if (!skb || !dev_in_ns(skb->dev)) {
		return 0;
	}
	struct event *e = reserve(K_SEND_RESET);
	if (!e)
		return 0;
	e->reason = reason;
	if (sk)
		fill_sock(e, sk);
	if (skb) {
		// The segment that provoked the reset.
		fill_pkt(e, skb, network_header(skb));
		e->ifindex = skb->dev->ifindex;
	}
	submit(e);
	return 0;
}

static __always_inline int sock_event(const struct sock *sk, __u32 kind)
{
	if (!sk_in_ns(sk))
		return 0;
	struct event *e = reserve(kind);
	if (!e)
		return 0;
	fill_sock(e, sk);
	submit(e);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(tcp_receive_reset, struct sock *sk)
{
	return sock_event(sk, K_RECEIVE_RESET);
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(tcp_destroy_sock, struct sock *sk)
{
	return sock_event(sk, K_DESTROY);
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit_skb, const struct sock *sk, const struct sk_buff *skb, int err)
{
	if (!sk_in_ns(sk))
		return 0;
	struct event *e = reserve(K_RETRANSMIT);
	if (!e)
		return 0;
	fill_sock(e, sk);
	// struct tcp_skb_cb: seq, end_seq, (u32), tcp_flags.
	__u8 cb[16];
	if (skb && bpf_probe_read_kernel(cb, sizeof(cb), (void *)skb + bpf_core_field_offset(skb->cb)) == 0) {
		__builtin_memcpy(&e->snd_nxt, &cb[0], 4); // seq
		__builtin_memcpy(&e->snd_una, &cb[4], 4); // end_seq
		e->tcp[13] = cb[12];
	}
	e->reason = err; // the transmit error, 0 when sent
	submit(e);
	return 0;
}

// A SYN-ACK retransmitted for a connection request (a request socket, in
// SYN-RECEIVED): no skb of the original exists, the sequence number is the
// request's initial one.
SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(tcp_retransmit_synack, const struct sock *sk, const struct request_sock *req)
{
	if (!sk_in_ns(sk))
		return 0;
	struct event *e = reserve(K_RETRANSMIT);
	if (!e)
		return 0;
	fill_sock(e, (const struct sock *)req);
	e->snd_nxt = BPF_CORE_READ((const struct tcp_request_sock *)req, snt_isn);
	e->snd_una = e->snd_nxt + 1; // the SYN
	e->tcp[13] = 0x12;           // SYN|ACK
	submit(e);
	return 0;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(tcp_probe, struct sock *sk, const struct sk_buff *skb)
{
	if (!sk_in_ns(sk))
		return 0;
	struct event *e = reserve(K_PROBE);
	if (!e)
		return 0;
	fill_sock(e, sk);
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (tp) {
		e->snd_nxt = tp->snd_nxt;
		e->snd_una = tp->snd_una;
		e->rcv_nxt = tp->rcv_nxt;
		e->snd_wnd = tp->snd_wnd;
		e->rcv_wnd = tp->rcv_wnd;
		e->snd_cwnd = tp->snd_cwnd;
		e->ssthresh = tp->snd_ssthresh;
		e->srtt_us = tp->srtt_us >> 3;
		e->packets_out = tp->packets_out;
		e->retrans_out = tp->retrans_out;
		e->mss = tp->mss_cache;
	}
	e->cookie = bpf_get_socket_cookie(sk);
	if (skb) {
		fill_pkt(e, skb, network_header(skb));
		e->ifindex = skb->dev->ifindex;
	}
	submit(e);
	return 0;
}

// ---- segments ----

SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(net_dev_start_xmit, const struct sk_buff *skb, const struct net_device *dev)
{
	if (!dev_in_ns(dev))
		return 0;
	if (skb->protocol != bpf_htons(ETH_P_IP) && skb->protocol != bpf_htons(ETH_P_IPV6))
		return 0;
	struct event *e = reserve(K_SENT);
	if (!e)
		return 0;
	if (!fill_pkt(e, skb, network_header(skb))) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	e->ifindex = dev->ifindex;
	struct sock *sk = skb->sk;
	if (sk) {
		e->flags |= F_LOCAL;
		e->sk = (__u64)sk;
	}
	submit(e);
	return 0;
}

// Every packet a device of the namespace hands to the stack, before routing:
// segments for local sockets and segments to be forwarded alike. The
// network header is not set yet; skb->data points at it (no link header on
// TUN; eth_type_trans pulled it on lo and Ethernet devices).
SEC("tp_btf/netif_receive_skb")
int BPF_PROG(netif_receive_skb, struct sk_buff *skb)
{
	struct net_device *dev = skb->dev;
	if (!dev_in_ns(dev))
		return 0;
	if (skb->protocol != bpf_htons(ETH_P_IP) && skb->protocol != bpf_htons(ETH_P_IPV6))
		return 0;
	struct event *e = reserve(K_RECEIVED);
	if (!e)
		return 0;
	if (!fill_pkt(e, skb, skb->data)) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	e->ifindex = dev->ifindex;
	submit(e);
	return 0;
}

// Every skb the kernel frees as dropped, with the reason; reported when it
// is a TCP packet of the namespace (by its device, else its socket).
SEC("tp_btf/kfree_skb")
int BPF_PROG(kfree_skb, struct sk_buff *skb, void *location, int reason, struct sock *rx_sk)
{
	if ((__u32)reason == drop_consumed || (__u32)reason == drop_not_dropped_yet)
		return 0;
	struct net_device *dev = skb->dev;
	if (dev) {
		if (!dev_in_ns(dev))
			return 0;
	} else {
		struct sock *sk = rx_sk ? rx_sk : skb->sk;
		if (!sk_in_ns(sk))
			return 0;
	}
	if (skb->protocol != bpf_htons(ETH_P_IP) && skb->protocol != bpf_htons(ETH_P_IPV6))
		return 0;
	struct event *e = reserve(K_DROPPED);
	if (!e)
		return 0;
	if (!fill_pkt(e, skb, network_header(skb))) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	e->reason = reason;
	if (dev)
		e->ifindex = dev->ifindex;
	if (rx_sk)
		e->sk = (__u64)rx_sk;
	// An skb owned by the socket whose port is its source port is one this
	// namespace sent (early demux also attaches sockets to received skbs).
	struct sock *owner = skb->sk;
	if (owner && owner->__sk_common.skc_num == (((__u16)e->tcp[0] << 8) | e->tcp[1])) {
		e->flags |= F_LOCAL;
		e->sk = (__u64)owner;
	}
	submit(e);
	return 0;
}
