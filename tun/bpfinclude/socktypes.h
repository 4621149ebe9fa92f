// SPDX-License-Identifier: GPL-2.0
//
// socktypes.h: the kernel's socket and namespace types that tcplab's eBPF
// programs (tun/ktrace, tun/calltrace) read, declared for CO-RE: only the
// fields used, matched by name against the running kernel's BTF (no
// vmlinux.h). A field declared here costs nothing unless a program reads
// it. Include after <linux/types.h>.
#ifndef TCPLAB_SOCKTYPES_H
#define TCPLAB_SOCKTYPES_H

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct in6_addr {
	union {
		__u8 u6_addr8[16];
	} in6_u;
} __attribute__((preserve_access_index));

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;
} __attribute__((preserve_access_index));

struct tcp_sock {
	__u32 snd_wnd;
	__u32 snd_cwnd;
	__u32 snd_ssthresh;
	__u32 rcv_nxt;
	__u32 copied_seq;
	__u32 snd_nxt;
	__u32 snd_una;
	__u32 srtt_us;
	__u32 rcv_wnd;
	__u32 packets_out;
	__u32 retrans_out;
	__u32 mss_cache;
} __attribute__((preserve_access_index));

#endif
