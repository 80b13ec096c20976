/* HTTP intake connections: the whole-request deadline.
 *
 * libmicrohttpd's connection timeout is an idle timeout: a client that sends
 * one byte a second is never idle, and MHD calls us only once the headers are
 * in. So every connection gets a deadline of its own, armed when the
 * connection opens and again after each answer: the next request (headers
 * and body) must arrive whole within intake_request_timeout seconds. Past it
 * the socket is shut down (not closed: MHD owns the descriptor) and MHD,
 * woken by the hang-up, closes the connection. */
#include <stdlib.h>
#include <sys/socket.h>

#include "worker/http/intake_int.h"
#include "worker/base/log.h"

struct rw_intake_conn {
    struct rw_intake *in;         /* borrowed */
    int fd;                       /* borrowed from MHD; never closed here */
    ev_timer deadline;
};

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_intake_conn *c = t->data;

    rw_debug("http intake: closing a connection that sent no whole request within %d s "
             "(intake_request_timeout)", c->in->env.cfg->intake_request_timeout_s);
    shutdown(c->fd, SHUT_RDWR);
    rw_intake_kick(c->in);
}

static void arm(struct rw_intake_conn *c)
{
    ev_timer_stop(c->in->env.loop, &c->deadline);
    ev_timer_set(&c->deadline, (double)c->in->env.cfg->intake_request_timeout_s, 0.);
    ev_timer_start(c->in->env.loop, &c->deadline);
}

void rw_intake_on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                             enum MHD_ConnectionNotificationCode toe)
{
    struct rw_intake *in = cls;
    struct rw_intake_conn *c = *socket_context;
    const union MHD_ConnectionInfo *info;

    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (c) {
            ev_timer_stop(in->env.loop, &c->deadline);
            free(c);
        }
        *socket_context = NULL;
        return;
    }
    info = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info || !(c = calloc(1, sizeof *c))) {
        /* no deadline can be kept for it: refuse the connection now */
        if (info)
            shutdown(info->connect_fd, SHUT_RDWR);
        return;
    }
    c->in = in;
    c->fd = info->connect_fd;
    ev_init(&c->deadline, on_deadline);
    c->deadline.data = c;
    *socket_context = c;
    arm(c);
}

static struct rw_intake_conn *conn_of(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return info ? info->socket_context : NULL;
}

void rw_intake_conn_received(struct MHD_Connection *mc)
{
    struct rw_intake_conn *c = conn_of(mc);

    if (c)
        ev_timer_stop(c->in->env.loop, &c->deadline);
}

void rw_intake_conn_answered(struct MHD_Connection *mc)
{
    struct rw_intake_conn *c = conn_of(mc);

    if (c)
        arm(c);
}
