/* ipaddr.h: client addresses, trusted proxies and open connections per
 * address.
 *
 * The client address of a connection is its TCP peer, unless that peer is a
 * trusted proxy (TRUSTED_PROXIES): then it is the rightmost address of
 * X-Forwarded-For that is not itself a trusted proxy. The header is never
 * believed from anyone else, since any client can send one.
 *
 * DESIGN: the table of open connections per address is shared by the
 * acceptor (which counts a connection in when it upgrades it) and the
 * workers (which count it out when it ends) under one mutex: it changes on
 * connect and disconnect only, never per message. The parsers are pure. */
#ifndef CHAT_IPADDR_H
#define CHAT_IPADDR_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hmap.h"

struct sockaddr;

/* An IPv4 address is stored as IPv4-mapped IPv6 (::ffff:a.b.c.d), so one
 * comparison serves both families. */
struct ipaddr {
    uint8_t b[16];
};

struct ipnet {
    struct ipaddr addr;
    uint8_t prefix; /* 0..128 over the 16 bytes */
};

/* Parses an IPv4 or IPv6 literal s[0..len). Returns false when it is not one. */
bool ipaddr_parse(const char *s, size_t len, struct ipaddr *out);

/* The address of a socket peer (AF_INET or AF_INET6). */
bool ipaddr_from_sockaddr(const struct sockaddr *sa, struct ipaddr *out);

/* Writes a as text (dotted for IPv4) into out, at least 46 bytes. */
void ipaddr_format(const struct ipaddr *a, char *out, size_t cap);

/* Parses a CIDR list "10.0.0.0/8, ::1, 192.168.1.7" (an address alone is
 * one host). Returns how many networks (at most max), or -1 on a bad entry. */
int ipnet_parse_list(const char *s, struct ipnet *nets, int max);

bool ipnet_contains(const struct ipnet *nets, int n, const struct ipaddr *a);

/* The client address for a connection from peer carrying the X-Forwarded-For
 * value xff (NULL when absent): see above. An entry may carry a port
 * ("1.2.3.6:5555", "[2001:db8::1]:443") or brackets ("[2001:db8::1]"); one
 * that does not parse ends the walk at the nearest address reached so far. */
struct ipaddr ipaddr_client(const struct ipaddr *peer, const char *xff, size_t xff_len,
                            const struct ipnet *trusted, int ntrusted);

/* The address a's connections are counted under: an IPv4 address itself,
 * an IPv6 address cut to its first v6_prefix bits (one /64 is usually one
 * subscriber, who can pick any address in it). */
struct ipaddr ipaddr_quota_key(const struct ipaddr *a, unsigned v6_prefix);

/* Open connections per client address, bounded by a limit. */
struct ip_counts {
    pthread_mutex_t lock;
    struct hmap map; /* under lock: counts by address (map.n of them) */
};

int ip_counts_init(struct ip_counts *t);
void ip_counts_free(struct ip_counts *t);

/* Counts one more connection from a unless it already has limit. Returns
 * true when counted. Acceptor thread. */
bool ip_counts_take(struct ip_counts *t, const struct ipaddr *a, uint32_t limit);

/* Counts one connection from a out. The worker that ended it. */
void ip_counts_release(struct ip_counts *t, const struct ipaddr *a);

#endif
