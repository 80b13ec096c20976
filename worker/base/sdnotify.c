/* systemd notify protocol without libsystemd: see sdnotify.h. */
#include "worker/base/sdnotify.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "worker/base/log.h"

#define STATUS_MAX 256               /* bytes of one STATUS= line */
#define MESSAGE_MAX (STATUS_MAX + 64)

struct rw_sdnotify {
    struct ev_loop *loop;
    struct rw_sdnotify_callbacks cb;
    int fd;
    struct sockaddr_un addr;
    socklen_t addrlen;
    double watchdog_s;               /* ping period; 0 = no watchdog */
    enum rw_sdnotify_state said;     /* the last state told to systemd */
    char status[STATUS_MAX];         /* the last STATUS= sent */
    bool send_failed;                /* a failure was logged already */
    ev_prepare turn;                 /* state changes, once per loop turn */
    ev_timer tick;                   /* WATCHDOG=1 and STATUS= */
};

/* $NOTIFY_SOCKET into an address: "/path" or "@abstract". */
static int parse_address(const char *s, struct sockaddr_un *a, socklen_t *len)
{
    size_t n = strlen(s);

    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if ((s[0] != '/' && s[0] != '@') || n < 2 || n >= sizeof a->sun_path)
        return -1;
    memcpy(a->sun_path, s, n);
    if (s[0] == '@')
        a->sun_path[0] = '\0';       /* abstract: no terminating NUL counted */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (s[0] == '/'));
    return 0;
}

static void send_msg(struct rw_sdnotify *n, const char *msg)
{
    ssize_t r = sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT,
                       (const struct sockaddr *)&n->addr, n->addrlen);

    if (r >= 0) {
        n->send_failed = false;
        return;
    }
    if (!n->send_failed)
        rw_warn("could not notify systemd through NOTIFY_SOCKET: %s (later "
                "failures are not logged until one succeeds)", strerror(errno));
    n->send_failed = true;
}

/* Appends "STATUS=<line>\n" to msg when the line changed. */
static void add_status(struct rw_sdnotify *n, char *msg, size_t cap)
{
    char now[STATUS_MAX];

    n->cb.status(n->cb.arg, now, sizeof now);
    if (strcmp(now, n->status) == 0)
        return;
    snprintf(n->status, sizeof n->status, "%s", now);
    size_t len = strlen(msg);
    snprintf(msg + len, cap - len, "STATUS=%s\n", now);
}

static void on_turn(struct ev_loop *loop, ev_prepare *p, int revents)
{
    struct rw_sdnotify *n = p->data;
    enum rw_sdnotify_state st = n->cb.state(n->cb.arg);
    char msg[MESSAGE_MAX] = "";

    if (st <= n->said)
        return;                      /* only forward: READY once, STOPPING once */
    if (st == RW_SD_READY) {
        snprintf(msg, sizeof msg, "READY=1\n");
        add_status(n, msg, sizeof msg);
    } else if (st == RW_SD_STOPPING) {
        snprintf(msg, sizeof msg, "STOPPING=1\nSTATUS=stopping: finishing running jobs\n");
        snprintf(n->status, sizeof n->status, "stopping: finishing running jobs");
    }
    n->said = st;
    if (msg[0])
        send_msg(n, msg);
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_sdnotify *n = t->data;
    char msg[MESSAGE_MAX] = "";

    if (n->watchdog_s > 0)
        snprintf(msg, sizeof msg, "WATCHDOG=1\n");
    if (n->said == RW_SD_READY)
        add_status(n, msg, sizeof msg);
    if (msg[0])
        send_msg(n, msg);
}

/* Half of $WATCHDOG_USEC when the watchdog is meant for this process. */
static double watchdog_period(void)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    char *end;

    if (!usec || !*usec)
        return 0;
    if (pid && *pid) {
        long p = strtol(pid, &end, 10);
        if (*end || p != (long)getpid())
            return 0;
    }
    errno = 0;
    unsigned long long us = strtoull(usec, &end, 10);
    if (errno || *end || us == 0) {
        rw_warn("ignoring WATCHDOG_USEC=\"%.20s\": not a positive number of microseconds",
                usec);
        return 0;
    }
    return (double)us / 2e6;
}

struct rw_sdnotify *rw_sdnotify_new(struct ev_loop *loop,
                                    const struct rw_sdnotify_callbacks *cb)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct rw_sdnotify *n;

    if (!path || !*path)
        return NULL;
    n = calloc(1, sizeof *n);
    if (!n) {
        rw_warn("could not start systemd notification: out of memory");
        return NULL;
    }
    if (parse_address(path, &n->addr, &n->addrlen) < 0) {
        rw_warn("ignoring NOTIFY_SOCKET \"%.80s\": expected an absolute path or an "
                "abstract name starting with '@'", path);
        free(n);
        return NULL;
    }
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (n->fd < 0) {
        rw_warn("could not open a socket for NOTIFY_SOCKET: %s", strerror(errno));
        free(n);
        return NULL;
    }
    n->loop = loop;
    n->cb = *cb;
    n->said = RW_SD_STARTING;
    n->watchdog_s = watchdog_period();
    ev_prepare_init(&n->turn, on_turn);
    n->turn.data = n;
    ev_prepare_start(loop, &n->turn);
    ev_unref(loop);
    double every = n->watchdog_s > 0 && n->watchdog_s < RW_SDNOTIFY_STATUS_S
                   ? n->watchdog_s : RW_SDNOTIFY_STATUS_S;
    ev_timer_init(&n->tick, on_tick, every, every);
    n->tick.data = n;
    ev_timer_start(loop, &n->tick);
    ev_unref(loop);
    if (n->watchdog_s > 0)
        rw_info("systemd watchdog on: pinging every %.3f s", n->watchdog_s);
    return n;
}

double rw_sdnotify_watchdog_period(const struct rw_sdnotify *n)
{
    return n ? n->watchdog_s : 0;
}

void rw_sdnotify_free(struct rw_sdnotify **np)
{
    struct rw_sdnotify *n = np ? *np : NULL;

    if (!n)
        return;
    if (n->said != RW_SD_STOPPING)   /* the loop ended before a turn told it */
        send_msg(n, "STOPPING=1\n");
    ev_ref(n->loop);
    ev_prepare_stop(n->loop, &n->turn);
    ev_ref(n->loop);
    ev_timer_stop(n->loop, &n->tick);
    close(n->fd);
    free(n);
    *np = NULL;
}
