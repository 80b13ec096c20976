/* The outgoing-HTTP guard (docs/security.md): built-in tasks may
 * not reach private, loopback, link-local, metadata or otherwise special
 * addresses, unless the operator allowlisted them in `http_allow`.
 *
 * The check runs on the address curl is about to connect to (http_client's
 * CURLOPT_OPENSOCKETFUNCTION hook), never on the URL's text, so a name that
 * resolves (or re-resolves: DNS rebinding) to a private address is refused
 * too. Cloud metadata host names are refused by name as well.
 *
 * `http_allow` is a comma-separated list of entries, each one of:
 *   an IPv4 or IPv6 CIDR   10.0.0.0/8, fd00::/8
 *   an IPv4 or IPv6 address 127.0.0.1, ::1 (a /32 or /128)
 *   a host name            hooks.internal (exact, case-insensitive): requests
 *                          to that URL host may reach any address it resolves to
 * Whitespace around entries is ignored; empty entries are an error. */
#ifndef RW_NETGUARD_H
#define RW_NETGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define RW_NETGUARD_MAX_ENTRIES 64
#define RW_NETGUARD_MAX_ALLOW 4096     /* longest http_allow value, in bytes */

struct rw_netguard;

/* Parses an http_allow value (NULL or "" = nothing allowlisted). On success
 * *out is a new guard owned by the caller (free with rw_netguard_free) and
 * 0 is returned; on error -1 with err naming the bad entry. */
int rw_netguard_new(const char *allow, struct rw_netguard **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void rw_netguard_free(struct rw_netguard **g);

/* The class of a refused address ("loopback", "private", ...), or NULL when
 * the address is public. Ignores any allowlist. */
const char *rw_netguard_addr_class(const struct sockaddr *sa);

/* May a connection go to sa? False with `why` filled ("refused: 127.0.0.1
 * is a loopback address; allow it with http_allow") when not. g may be
 * NULL (nothing allowlisted). */
bool rw_netguard_check_addr(const struct rw_netguard *g, const struct sockaddr *sa,
                            char *why, size_t whylen);

/* Checks a URL's host before any connection: metadata host names are
 * refused unless allowlisted. *host_allowed is set when the host itself is
 * allowlisted by name (its addresses then need no check). */
bool rw_netguard_check_host(const struct rw_netguard *g, const char *host,
                            bool *host_allowed, char *why, size_t whylen);

#endif
