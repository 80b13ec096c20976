/* The outgoing-HTTP guard; see netguard.h. Addresses are compared as 16
 * bytes: IPv4 in its IPv4-mapped IPv6 form (::ffff:a.b.c.d), so one table
 * and one CIDR matcher serve both families. */
#include "worker/net/netguard.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HOST 253

struct cidr {
    unsigned char addr[16];
    int bits;                   /* of the 128 */
};

struct rw_netguard {
    struct cidr nets[RW_NETGUARD_MAX_ENTRIES];
    int nnets;
    char *hosts[RW_NETGUARD_MAX_ENTRIES];   /* lower case, owned */
    int nhosts;
};

/* Refused ranges, most specific first (first match names the class). */
static const struct { const char *cidr, *article, *cls; } refused[] = {
    {"169.254.169.254/32", "a", "cloud metadata"},
    {"0.0.0.0/8", "an", "unspecified (\"this network\")"},
    {"10.0.0.0/8", "a", "private"},
    {"100.64.0.0/10", "a", "shared (carrier-grade NAT)"},
    {"127.0.0.0/8", "a", "loopback"},
    {"169.254.0.0/16", "a", "link-local"},
    {"172.16.0.0/12", "a", "private"},
    {"192.0.0.0/24", "an", "IETF protocol assignments"},
    {"192.168.0.0/16", "a", "private"},
    {"198.18.0.0/15", "a", "benchmarking"},
    {"224.0.0.0/4", "a", "multicast"},
    {"240.0.0.0/4", "a", "reserved"},
    {"::/128", "an", "unspecified"},
    {"::1/128", "a", "loopback"},
    {"fd00:ec2::254/128", "a", "cloud metadata"},
    {"fc00::/7", "a", "unique local"},
    {"fe80::/10", "a", "link-local"},
    {"fec0::/10", "a", "site-local"},
    {"ff00::/8", "a", "multicast"},
    {"64:ff9b:1::/48", "a", "local-use NAT64"},
    {"100::/64", "a", "discard-only"},
};

/* IPv6 forms that carry an IPv4 address: the embedded address is checked. */
static const struct { const char *cidr, *form; int offset; } embedding[] = {
    {"::ffff:0:0/96", "IPv4-mapped", 12},
    {"64:ff9b::/96", "NAT64", 12},
    {"::/96", "IPv4-compatible", 12},
    {"2002::/16", "6to4", 2},
};

static const char *const metadata_hosts[] = {
    "metadata", "metadata.google.internal", "metadata.goog",
    "instance-data", "instance-data.ec2.internal",
};

/* "a.b.c.d[/n]" or "x:y::z[/n]" into c. Returns 0, or -1 when malformed. */
static int parse_cidr(const char *s, struct cidr *c)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    int max;

    if (n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(c, 0, sizeof *c);
    if (inet_pton(AF_INET, buf, c->addr + 12) == 1) {
        c->addr[10] = c->addr[11] = 0xff;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
        max = 128;
    } else {
        return -1;
    }
    c->bits = max;
    if (slash) {
        char *end;
        long v = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || v < 0 || v > max)
            return -1;
        c->bits = (int)v;
    }
    c->bits += 128 - max;
    return 0;
}

static bool in_cidr(const unsigned char a[16], const struct cidr *c)
{
    int full = c->bits / 8, rest = c->bits % 8;

    if (memcmp(a, c->addr, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (c->addr[full] & mask);
}

static bool in_cidr_text(const unsigned char a[16], const char *cidr)
{
    struct cidr c;
    return parse_cidr(cidr, &c) == 0 && in_cidr(a, &c);
}

/* sa as 16 bytes; false for families other than IPv4/IPv6. */
static bool to16(const struct sockaddr *sa, unsigned char a[16])
{
    memset(a, 0, 16);
    if (sa->sa_family == AF_INET) {
        a[10] = a[11] = 0xff;
        memcpy(a + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

/* The refused range holding a, or -1. */
static int refused_range(const unsigned char a[16])
{
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (in_cidr_text(a, refused[i].cidr))
            return (int)i;
    return -1;
}

/* Classifies a (from an AF_INET6 address when v6): the refused[] index or
 * -1. An IPv6 form that embeds IPv4 is classified by the embedded address,
 * and *form names the embedding. */
static int classify(const unsigned char a[16], bool v6, const char **form,
                    unsigned char v4[16])
{
    *form = NULL;
    for (size_t i = 0; v6 && i < sizeof embedding / sizeof embedding[0]; i++) {
        if (!in_cidr_text(a, embedding[i].cidr) || in_cidr_text(a, "::/127"))
            continue;   /* :: and ::1 are themselves, not IPv4-compatible */
        memset(v4, 0, 16);
        v4[10] = v4[11] = 0xff;
        memcpy(v4 + 12, a + embedding[i].offset, 4);
        int r = refused_range(v4);
        if (r >= 0)
            *form = embedding[i].form;
        return r;
    }
    return refused_range(a);
}

const char *rw_netguard_addr_class(const struct sockaddr *sa)
{
    unsigned char a[16], v4[16];
    const char *form;

    if (!to16(sa, a))
        return "non-IP";
    int r = classify(a, sa->sa_family == AF_INET6, &form, v4);
    return r >= 0 ? refused[r].cls : NULL;
}

static bool allowlisted(const struct rw_netguard *g, const unsigned char a[16])
{
    for (int i = 0; g && i < g->nnets; i++)
        if (in_cidr(a, &g->nets[i]))
            return true;
    return false;
}

static void addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
    const void *src = sa->sa_family == AF_INET
        ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
        : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;

    if (!inet_ntop(sa->sa_family, src, buf, (socklen_t)len))
        snprintf(buf, len, "?");
}

bool rw_netguard_check_addr(const struct rw_netguard *g, const struct sockaddr *sa,
                            char *why, size_t whylen)
{
    unsigned char a[16], v4[16];
    char text[INET6_ADDRSTRLEN];
    const char *form;

    if (!to16(sa, a)) {
        snprintf(why, whylen, "refused: not an IPv4 or IPv6 address");
        return false;
    }
    int r = classify(a, sa->sa_family == AF_INET6, &form, v4);
    /* allowing an IPv4 address allows its IPv6 forms too */
    if (r < 0 || allowlisted(g, a) || (form && allowlisted(g, v4)))
        return true;
    addr_text(sa, text, sizeof text);
    snprintf(why, whylen, "refused: %s is %s %s address%s%s%s; allow it with http_allow",
             text, refused[r].article, refused[r].cls, form ? " (" : "", form ? form : "",
             form ? " form)" : "");
    return false;
}

/* Lower-cased copy of host without one trailing dot, or false if too long. */
static bool norm_host(const char *host, char out[MAX_HOST + 2])
{
    size_t n = strlen(host);

    if (n > MAX_HOST + 1)
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)host[i]);
    if (n > 0 && out[n - 1] == '.')
        n--;
    out[n] = '\0';
    return true;
}

bool rw_netguard_check_host(const struct rw_netguard *g, const char *host,
                            bool *host_allowed, char *why, size_t whylen)
{
    char h[MAX_HOST + 2];

    *host_allowed = false;
    if (!norm_host(host, h)) {
        snprintf(why, whylen, "refused: the host name is longer than %d bytes", MAX_HOST);
        return false;
    }
    for (int i = 0; g && i < g->nhosts; i++)
        if (strcmp(g->hosts[i], h) == 0) {
            *host_allowed = true;
            return true;
        }
    for (size_t i = 0; i < sizeof metadata_hosts / sizeof metadata_hosts[0]; i++)
        if (strcmp(metadata_hosts[i], h) == 0) {
            snprintf(why, whylen, "refused: %s is a cloud metadata host; allow it with "
                     "http_allow", h);
            return false;
        }
    return true;
}

/* A host name entry: letters, digits, '-', '.', with at least one letter
 * (so that "10.0.0" is an error, not a name). */
static bool valid_host_entry(const char *s)
{
    bool letter = false;
    size_t n = strlen(s);

    if (n == 0 || n > MAX_HOST)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (isalpha(ch))
            letter = true;
        else if (!isdigit(ch) && ch != '-' && ch != '.')
            return false;
    }
    return letter && s[0] != '.' && s[0] != '-';
}

static int add_entry(struct rw_netguard *g, const char *e, char *err, size_t errlen)
{
    char h[MAX_HOST + 2];

    if (g->nnets + g->nhosts >= RW_NETGUARD_MAX_ENTRIES) {
        snprintf(err, errlen, "http_allow has more than %d entries", RW_NETGUARD_MAX_ENTRIES);
        return -1;
    }
    if (parse_cidr(e, &g->nets[g->nnets]) == 0) {
        g->nnets++;
        return 0;
    }
    if (strchr(e, '/') || strchr(e, ':') || !valid_host_entry(e) || !norm_host(e, h)) {
        snprintf(err, errlen, "http_allow entry \"%.80s\" is not a CIDR (10.0.0.0/8, fd00::/8), "
                 "an address or a host name", e);
        return -1;
    }
    if (!(g->hosts[g->nhosts] = strdup(h))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    g->nhosts++;
    return 0;
}

int rw_netguard_new(const char *allow, struct rw_netguard **out, char *err, size_t errlen)
{
    struct rw_netguard *g = calloc(1, sizeof *g);
    char *copy = NULL, *save = NULL;

    *out = NULL;
    if (allow && strlen(allow) > RW_NETGUARD_MAX_ALLOW) {
        snprintf(err, errlen, "http_allow is longer than %d bytes", RW_NETGUARD_MAX_ALLOW);
        free(g);
        return -1;
    }
    if (!g || (allow && !(copy = strdup(allow)))) {
        snprintf(err, errlen, "out of memory");
        free(g);
        return -1;
    }
    bool empty_list = !copy || strspn(copy, " \t") == strlen(copy);
    for (char *p = empty_list ? NULL : copy; p; p = save) {
        save = strchr(p, ',');
        if (save)
            *save++ = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strlen(p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            p[--n] = '\0';
        if (n == 0) {
            snprintf(err, errlen, "http_allow has an empty entry (two commas, or a comma at "
                     "either end)");
            goto fail;
        }
        if (add_entry(g, p, err, errlen) < 0)
            goto fail;
    }
    free(copy);
    *out = g;
    return 0;
fail:
    free(copy);
    rw_netguard_free(&g);
    return -1;
}

void rw_netguard_free(struct rw_netguard **gp)
{
    struct rw_netguard *g = *gp;

    if (!g)
        return;
    for (int i = 0; i < g->nhosts; i++)
        free(g->hosts[i]);
    free(g);
    *gp = NULL;
}
