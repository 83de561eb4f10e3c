/* test_ipaddr.c: addresses, networks, X-Forwarded-For and per-address counts. */
#include <string.h>

#include "ipaddr.h"
#include "suites.h"

static struct ipaddr ip(const char *s)
{
    struct ipaddr a;
    ck_assert_msg(ipaddr_parse(s, strlen(s), &a), "%s", s);
    return a;
}

START_TEST(addresses_and_networks)
{
    struct ipaddr a;
    ck_assert(!ipaddr_parse("10.0.0", 6, &a));
    ck_assert(!ipaddr_parse("", 0, &a));
    ck_assert(!ipaddr_parse("fe80::1%eth0", 12, &a));
    char out[64];
    a = ip("192.0.2.7");
    ipaddr_format(&a, out, sizeof(out));
    ck_assert_str_eq(out, "192.0.2.7");
    a = ip("2001:db8::1");
    ipaddr_format(&a, out, sizeof(out));
    ck_assert_str_eq(out, "2001:db8::1");

    struct ipnet nets[8];
    int n = ipnet_parse_list("10.0.0.0/8, 192.168.1.7 ,2001:db8::/32,172.16.0.0/12", nets, 8);
    ck_assert_int_eq(n, 4);
    struct ipaddr in[] = {ip("10.255.1.2"), ip("192.168.1.7"), ip("2001:db8:ffff::9"),
                          ip("172.31.255.255")};
    struct ipaddr out_[] = {ip("11.0.0.1"), ip("192.168.1.8"), ip("2001:db9::1"),
                            ip("172.32.0.0"), ip("::ffff:0:0")};
    for (size_t i = 0; i < 4; i++)
        ck_assert(ipnet_contains(nets, n, &in[i]));
    for (size_t i = 0; i < 5; i++)
        ck_assert(!ipnet_contains(nets, n, &out_[i]));
    /* An IPv4 network never takes an IPv6 address, and /0 takes every one of its family. */
    ck_assert_int_eq(ipnet_parse_list("0.0.0.0/0", nets, 8), 1);
    ck_assert(ipnet_contains(nets, 1, &in[0]));
    ck_assert(!ipnet_contains(nets, 1, &in[2]));
    const char *bad[] = {"", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/8,", "nope",
                         "10.0.0.0/8x", ",10.0.0.1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(ipnet_parse_list(bad[i], nets, 8) < 0, "%s", bad[i]);
    ck_assert_int_eq(ipnet_parse_list("1.1.1.1,2.2.2.2,3.3.3.3", nets, 2), -1);
}
END_TEST

START_TEST(forwarded_for_is_believed_only_from_trusted_proxies)
{
    struct ipnet trusted[4];
    int n = ipnet_parse_list("10.0.0.0/8,127.0.0.1", trusted, 4);
    struct ipaddr proxy = ip("10.1.1.1"), stranger = ip("203.0.113.9"), got;
    const char *xff = "198.51.100.1, 192.0.2.44, 10.2.2.2";
    /* From a stranger the header is ignored. */
    got = ipaddr_client(&stranger, xff, strlen(xff), trusted, n);
    ck_assert(memcmp(&got, &stranger, sizeof(got)) == 0);
    /* From a proxy: the rightmost address that is not a trusted proxy. A
     * client can put anything at the left; it cannot skip the right. */
    got = ipaddr_client(&proxy, xff, strlen(xff), trusted, n);
    struct ipaddr want = ip("192.0.2.44");
    ck_assert(memcmp(&got, &want, sizeof(got)) == 0);
    /* Every hop trusted: the leftmost. No header: the peer. */
    const char *all = "10.9.9.9, 127.0.0.1";
    got = ipaddr_client(&proxy, all, strlen(all), trusted, n);
    want = ip("10.9.9.9");
    ck_assert(memcmp(&got, &want, sizeof(got)) == 0);
    got = ipaddr_client(&proxy, NULL, 0, trusted, n);
    ck_assert(memcmp(&got, &proxy, sizeof(got)) == 0);
    /* Garbage ends the walk at the nearest address reached. */
    const char *junk = "192.0.2.1, not-an-ip, 10.2.2.2";
    got = ipaddr_client(&proxy, junk, strlen(junk), trusted, n);
    want = ip("10.2.2.2");
    ck_assert(memcmp(&got, &want, sizeof(got)) == 0);
    /* Entries with a port, or an IPv6 address in brackets, are the client
     * they name, not a reason to fall back to the proxy. */
    const struct {
        const char *xff, *want;
    } forms[] = {
        {"1.2.3.6:5555", "1.2.3.6"},
        {"[2001:db8::1]:443", "2001:db8::1"},
        {"[2001:db8::1]", "2001:db8::1"},
        {"198.51.100.9, 1.2.3.6:5555", "1.2.3.6"},
        {"2001:db8::7", "2001:db8::7"},
        {"[::ffff:1.2.3.4]:80", "1.2.3.4"},
        {"[1.2.3.4]:2", "1.2.3.4"},
        {"[1.2.3.4]", "1.2.3.4"},
        {"1.2.3.6:", "1.2.3.6"},
        /* Not addresses: the walk ends at the proxy. */
        {"1.2.3.6:555555", "10.1.1.1"},
        {"[2001:db8::1", "10.1.1.1"},
        {"[2001:db8::1]x", "10.1.1.1"},
        {"[1.2.3.4]:8x", "10.1.1.1"},
        {":80", "10.1.1.1"},
        {"2001:db8::1:443x", "10.1.1.1"},
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        got = ipaddr_client(&proxy, forms[i].xff, strlen(forms[i].xff), trusted, n);
        want = ip(forms[i].want);
        ck_assert_msg(memcmp(&got, &want, sizeof(got)) == 0, "%s", forms[i].xff);
    }
}
END_TEST

START_TEST(ipv6_is_counted_per_prefix)
{
    struct ipaddr a = ip("2001:db8:1:2:aaaa::1"), b = ip("2001:db8:1:2:ffff::9");
    struct ipaddr other = ip("2001:db8:1:3::1");
    struct ipaddr ka = ipaddr_quota_key(&a, 64), kb = ipaddr_quota_key(&b, 64);
    struct ipaddr ko = ipaddr_quota_key(&other, 64), want = ip("2001:db8:1:2::");
    ck_assert(memcmp(&ka, &want, sizeof(ka)) == 0);
    ck_assert(memcmp(&ka, &kb, sizeof(ka)) == 0);
    ck_assert(memcmp(&ka, &ko, sizeof(ka)) != 0);
    /* A prefix that is not a multiple of 8, and the whole address. */
    struct ipaddr k60 = ipaddr_quota_key(&other, 60);
    want = ip("2001:db8:1::");
    ck_assert(memcmp(&k60, &want, sizeof(k60)) == 0);
    struct ipaddr k128 = ipaddr_quota_key(&a, 128);
    ck_assert(memcmp(&k128, &a, sizeof(a)) == 0);
    /* IPv4 is always counted per address. */
    struct ipaddr v4 = ip("192.0.2.77"), k4 = ipaddr_quota_key(&v4, 64);
    ck_assert(memcmp(&k4, &v4, sizeof(v4)) == 0);
}
END_TEST

START_TEST(counts_per_address)
{
    struct ip_counts t;
    ck_assert_int_eq(ip_counts_init(&t), 0);
    struct ipaddr a = ip("192.0.2.1"), b = ip("2001:db8::2");
    ck_assert(ip_counts_take(&t, &a, 2));
    ck_assert(ip_counts_take(&t, &a, 2));
    ck_assert(!ip_counts_take(&t, &a, 2));
    ck_assert(ip_counts_take(&t, &b, 2));
    ip_counts_release(&t, &a);
    ck_assert(ip_counts_take(&t, &a, 2));
    ip_counts_release(&t, &a);
    ip_counts_release(&t, &a);
    ip_counts_release(&t, &b);
    ck_assert_uint_eq(t.map.n, 0); /* entries go when their count does */
    ip_counts_free(&t);
}
END_TEST

SUITE(ipaddr,
      addresses_and_networks,
      forwarded_for_is_believed_only_from_trusted_proxies,
      counts_per_address,
      ipv6_is_counted_per_prefix)
