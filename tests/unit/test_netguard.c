/* The outgoing-HTTP guard: every refused range (edges included), IPv6 forms
 * that embed IPv4, public addresses, metadata host names, allowlist parsing
 * and allowlist matching. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "worker/net/netguard.h"

/* A sockaddr for an address literal (IPv4 or IPv6). */
static struct sockaddr_storage sa_of(const char *text)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
        in6->sin6_family = AF_INET6;
    }
    return ss;
}

static const char *class_of(const char *text)
{
    struct sockaddr_storage ss = sa_of(text);
    return rw_netguard_addr_class((struct sockaddr *)&ss);
}

/* address, expected class (NULL = public, allowed) */
static const struct { const char *addr, *cls; } addr_cases[] = {
    {"0.0.0.0", "unspecified (\"this network\")"},
    {"0.255.255.255", "unspecified (\"this network\")"},
    {"10.0.0.0", "private"}, {"10.255.255.255", "private"},
    {"9.255.255.255", NULL}, {"11.0.0.0", NULL},
    {"100.64.0.0", "shared (carrier-grade NAT)"}, {"100.127.255.255", "shared (carrier-grade NAT)"},
    {"100.63.255.255", NULL}, {"100.128.0.0", NULL},
    {"100.100.100.200", "shared (carrier-grade NAT)"},      /* Alibaba metadata */
    {"127.0.0.1", "loopback"}, {"127.255.255.254", "loopback"}, {"128.0.0.0", NULL},
    {"169.254.0.1", "link-local"}, {"169.254.255.255", "link-local"},
    {"169.254.169.254", "cloud metadata"}, {"169.253.255.255", NULL},
    {"172.16.0.0", "private"}, {"172.31.255.255", "private"},
    {"172.15.255.255", NULL}, {"172.32.0.0", NULL},
    {"192.0.0.8", "IETF protocol assignments"}, {"192.0.1.0", NULL},
    {"192.168.1.1", "private"}, {"192.167.255.255", NULL}, {"192.169.0.0", NULL},
    {"198.18.0.0", "benchmarking"}, {"198.19.255.255", "benchmarking"},
    {"198.17.255.255", NULL}, {"198.20.0.0", NULL},
    {"224.0.0.1", "multicast"}, {"239.255.255.255", "multicast"},
    {"240.0.0.1", "reserved"}, {"255.255.255.255", "reserved"},
    {"223.255.255.255", NULL},
    {"8.8.8.8", NULL}, {"93.184.216.34", NULL}, {"1.1.1.1", NULL},
    /* IPv6 */
    {"::", "unspecified"}, {"::1", "loopback"},
    {"fc00::1", "unique local"}, {"fdff:ffff::1", "unique local"},
    {"fd00:ec2::254", "cloud metadata"},
    {"fe80::1", "link-local"}, {"febf:ffff::1", "link-local"},
    {"fec0::1", "site-local"}, {"ff02::1", "multicast"},
    {"64:ff9b:1::1", "local-use NAT64"}, {"100::1", "discard-only"},
    {"2001:4860:4860::8888", NULL}, {"2606:4700:4700::1111", NULL},
    {"fbff:ffff::1", NULL},
    /* IPv6 forms of IPv4 addresses */
    {"::ffff:127.0.0.1", "loopback"}, {"::ffff:10.1.2.3", "private"},
    {"::ffff:169.254.169.254", "cloud metadata"}, {"::ffff:8.8.8.8", NULL},
    {"64:ff9b::7f00:1", "loopback"}, {"64:ff9b::192.168.0.1", "private"},
    {"64:ff9b::8.8.8.8", NULL},
    {"::127.0.0.1", "loopback"}, {"::10.0.0.1", "private"},
    {"2002:7f00:1::", "loopback"}, {"2002:a9fe:a9fe::1", "cloud metadata"},
    {"2002:808:808::1", NULL},
};

static void test_address_classes(void **state)
{
    for (size_t i = 0; i < sizeof addr_cases / sizeof addr_cases[0]; i++) {
        const char *got = class_of(addr_cases[i].addr);
        if (!addr_cases[i].cls != !got ||
            (got && strcmp(got, addr_cases[i].cls) != 0))
            fail_msg("%s: expected %s, got %s", addr_cases[i].addr,
                     addr_cases[i].cls ? addr_cases[i].cls : "public",
                     got ? got : "public");
    }
}

static bool check(const struct rw_netguard *g, const char *addr, char *why, size_t n)
{
    struct sockaddr_storage ss = sa_of(addr);
    return rw_netguard_check_addr(g, (struct sockaddr *)&ss, why, n);
}

static void test_refusal_messages(void **state)
{
    char why[256];

    assert_false(check(NULL, "127.0.0.1", why, sizeof why));
    assert_string_equal(why, "refused: 127.0.0.1 is a loopback address; allow it with http_allow");
    assert_false(check(NULL, "::ffff:10.0.0.1", why, sizeof why));
    assert_string_equal(why, "refused: ::ffff:10.0.0.1 is a private address (IPv4-mapped form); "
                        "allow it with http_allow");
    assert_false(check(NULL, "169.254.169.254", why, sizeof why));
    assert_non_null(strstr(why, "cloud metadata"));
    assert_false(check(NULL, "::", why, sizeof why));
    assert_non_null(strstr(why, "is an unspecified address"));
    assert_true(check(NULL, "8.8.8.8", why, sizeof why));
}

/* allowlist, address, allowed? */
static const struct { const char *allow, *addr; bool ok; } allow_cases[] = {
    {"127.0.0.1/32", "127.0.0.1", true},
    {"127.0.0.1/32", "127.0.0.2", false},
    {"127.0.0.1", "127.0.0.1", true},
    {"127.0.0.1", "::ffff:127.0.0.1", true},       /* the IPv4 form allows its IPv6 forms */
    {"127.0.0.1", "64:ff9b::7f00:1", true},
    {"127.0.0.1", "::1", false},
    {"10.0.0.0/8", "10.200.0.1", true},
    {"10.0.0.0/8", "11.0.0.1", true},               /* public anyway */
    {"10.0.0.0/8", "172.16.0.1", false},
    {"10.1.0.0/16, 192.168.0.0/24", "192.168.0.77", true},
    {"10.1.0.0/16, 192.168.0.0/24", "192.168.1.77", false},
    {"10.1.0.0/16, 192.168.0.0/24", "10.2.0.1", false},
    {"172.16.0.0/13", "172.23.255.255", true},      /* prefix not on a byte boundary */
    {"172.16.0.0/13", "172.24.0.0", false},
    {"::1", "::1", true},
    {"::1/128", "127.0.0.1", false},
    {"fd00::/8", "fd12::1", true},
    {"fd00::/8", "fc00::1", false},
    {"fe80::/10", "fe80::abcd", true},
    {"0.0.0.0/0", "169.254.169.254", true},         /* operator's explicit choice */
    {"::/0", "fc00::1", true},
    {"hooks.internal", "10.0.0.1", false},          /* names allow by URL host only */
};

static void test_allowlist_matching(void **state)
{
    char err[256], why[256];

    for (size_t i = 0; i < sizeof allow_cases / sizeof allow_cases[0]; i++) {
        struct rw_netguard *g = NULL;
        if (rw_netguard_new(allow_cases[i].allow, &g, err, sizeof err) < 0)
            fail_msg("%s: %s", allow_cases[i].allow, err);
        bool ok = check(g, allow_cases[i].addr, why, sizeof why);
        rw_netguard_free(&g);
        assert_null(g);
        if (ok != allow_cases[i].ok)
            fail_msg("allow \"%s\", %s: expected %s", allow_cases[i].allow,
                     allow_cases[i].addr, allow_cases[i].ok ? "allowed" : "refused");
    }
}

/* http_allow values: valid, or the error must contain `msg` */
static const struct { const char *allow, *msg; } parse_cases[] = {
    {NULL, NULL}, {"", NULL}, {"  ", NULL},
    {"10.0.0.0/8", NULL}, {" 10.0.0.0/8 ,\t::1 ", NULL}, {"Hooks.Example.", NULL},
    {"a-b.c1", NULL}, {"0.0.0.0/0", NULL}, {"::/0", NULL},
    {"10.0.0.0/33", "not a CIDR"}, {"::1/129", "not a CIDR"}, {"10.0.0.0/", "not a CIDR"},
    {"10.0.0.0/8x", "not a CIDR"}, {"10.0.0.0/-1", "not a CIDR"},
    {"10.0.0", "not a CIDR"}, {"1.2.3.4.5", "not a CIDR"}, {"fe80::zz", "not a CIDR"},
    {"bad_host", "not a CIDR"}, {"-bad", "not a CIDR"}, {"host/8", "not a CIDR"},
    {"10.0.0.0/8,", "empty entry"}, {",10.0.0.0/8", "empty entry"},
    {"a,,b", "empty entry"},
};

static void test_allowlist_parsing(void **state)
{
    char err[256];

    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        struct rw_netguard *g = NULL;
        int rc = rw_netguard_new(parse_cases[i].allow, &g, err, sizeof err);
        if (!parse_cases[i].msg) {
            if (rc != 0)
                fail_msg("\"%s\": unexpected error %s", parse_cases[i].allow, err);
            assert_non_null(g);
        } else {
            if (rc == 0)
                fail_msg("\"%s\": accepted, expected an error", parse_cases[i].allow);
            assert_null(g);
            if (!strstr(err, parse_cases[i].msg))
                fail_msg("\"%s\": error \"%s\" lacks \"%s\"", parse_cases[i].allow, err,
                         parse_cases[i].msg);
        }
        rw_netguard_free(&g);
    }
}

static void test_allowlist_limits(void **state)
{
    char buf[RW_NETGUARD_MAX_ALLOW + 64], err[256];
    struct rw_netguard *g = NULL;
    size_t n = 0;

    for (int i = 0; i <= RW_NETGUARD_MAX_ENTRIES; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s10.0.%d.0/24", i ? "," : "", i);
    assert_int_equal(rw_netguard_new(buf, &g, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than"));
    memset(buf, 'a', sizeof buf - 1);
    buf[sizeof buf - 1] = '\0';
    assert_int_equal(rw_netguard_new(buf, &g, err, sizeof err), -1);
    assert_non_null(strstr(err, "longer than"));
    assert_null(g);
}

/* host, allowlist, passes?, allowlisted by name? */
static const struct { const char *host, *allow; bool ok, named; } host_cases[] = {
    {"example.com", NULL, true, false},
    {"metadata.google.internal", NULL, false, false},
    {"METADATA.Google.Internal.", NULL, false, false},
    {"metadata", NULL, false, false},
    {"metadata.goog", NULL, false, false},
    {"instance-data", NULL, false, false},
    {"instance-data.ec2.internal", NULL, false, false},
    {"metadata.google.internal.example.com", NULL, true, false},
    {"metadata.google.internal", "metadata.google.internal", true, true},
    {"hooks.internal", "hooks.internal", true, true},
    {"HOOKS.internal.", "hooks.internal", true, true},
    {"other.internal", "hooks.internal", true, false},
    {"hooks.internal", "10.0.0.0/8", true, false},
};

static void test_hosts(void **state)
{
    char err[256], why[256];

    for (size_t i = 0; i < sizeof host_cases / sizeof host_cases[0]; i++) {
        struct rw_netguard *g = NULL;
        bool named = true;
        assert_int_equal(rw_netguard_new(host_cases[i].allow, &g, err, sizeof err), 0);
        bool ok = rw_netguard_check_host(g, host_cases[i].host, &named, why, sizeof why);
        rw_netguard_free(&g);
        if (ok != host_cases[i].ok || named != host_cases[i].named)
            fail_msg("%s (allow %s): got ok=%d named=%d", host_cases[i].host,
                     host_cases[i].allow ? host_cases[i].allow : "-", ok, named);
        if (!ok && !strstr(why, "cloud metadata host"))
            fail_msg("%s: message \"%s\"", host_cases[i].host, why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_classes),
        cmocka_unit_test(test_refusal_messages),
        cmocka_unit_test(test_allowlist_matching),
        cmocka_unit_test(test_allowlist_parsing),
        cmocka_unit_test(test_allowlist_limits),
        cmocka_unit_test(test_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
