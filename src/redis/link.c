/* link.c: a non-blocking connection to one Redis node (link.h). */
#include "redis/link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "redis/link_internal.h"

/* One read takes at most this much: hiredis 0.14's reader moves what is
 * left of its buffer each time it hands out a reply, so feeding it a chunk
 * and taking the replies before the next keeps that cost small. */
#define READ_CHUNK 16384
/* Chunks read for one epoll event before others get their turn. */
#define READS_PER_EVENT 64

static bool fail(struct redis_link *l, const char *what, const char *detail)
{
    snprintf(l->err, sizeof(l->err), "%.100s:%u: %.60s%.120s", l->host, l->port, what, detail);
    return false;
}

int redis_link_init(struct redis_link *l, const char *host, uint16_t port,
                    const struct redis_link_env *env, loop_fn *on_io)
{
    *l = (struct redis_link){.io = {on_io}, .port = port, .env = env, .fd = -1};
    snprintf(l->host, sizeof(l->host), "%s", host);
    redis_backoff_init(&l->bo);
    return 0;
}

void redis_link_free(struct redis_link *l)
{
    redis_link_close(l, 0, false);
    if (l->reader)
        redisReaderFree(l->reader);
    l->reader = NULL;
    free(l->out);
    l->out = NULL;
    l->out_cap = 0;
    redis_lookup_drop(l->lookup);
    l->lookup = NULL;
}

static void watch(struct redis_link *l, uint32_t events)
{
    if (l->fd < 0 || events == l->events)
        return;
    int rc = l->events ? loop_mod(l->env->loop, l->fd, &l->io, events)
                       : loop_add(l->env->loop, l->fd, &l->io, events);
    if (rc == 0)
        l->events = events;
}

static bool append(struct redis_link *l, const char *p, size_t n)
{
    if (l->out_off == l->out_len) {
        l->out_off = l->out_len = 0;
    } else if (l->out_off && l->out_len + n > l->out_cap) {
        /* What was written already makes room before anything grows. */
        memmove(l->out, l->out + l->out_off, l->out_len - l->out_off);
        l->out_len -= l->out_off;
        l->out_off = 0;
    }
    if (l->out_len + n > l->out_cap) {
        size_t cap = l->out_cap ? l->out_cap : 4096;
        while (cap < l->out_len + n)
            cap *= 2;
        char *grown = realloc(l->out, cap);
        if (!grown)
            return fail(l, "", "out of memory for a command");
        l->out = grown;
        l->out_cap = cap;
    }
    memcpy(l->out + l->out_len, p, n);
    l->out_len += n;
    return true;
}

static bool format(struct redis_link *l, int argc, const char **argv, const size_t *argvlen)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (n < 0 || !cmd)
        return fail(l, "", "out of memory for a command");
    bool ok = append(l, cmd, (size_t)n);
    redisFreeCommand(cmd);
    return ok;
}

/* AUTH, SELECT and PING, answered before anything else is sent. */
static bool queue_hello(struct redis_link *l)
{
    const struct redis_link_env *e = l->env;
    l->hello_left = 0;
    if (e->password && e->password[0]) {
        const char *argv[3] = {"AUTH", e->user, e->password};
        size_t len[3] = {4, strlen(e->user), strlen(e->password)};
        bool user = e->user && e->user[0];
        if (!user) {
            argv[1] = e->password;
            len[1] = len[2];
        }
        if (!format(l, user ? 3 : 2, argv, len))
            return false;
        l->hello_left++;
    }
    if (e->db) {
        char db[16];
        int n = snprintf(db, sizeof(db), "%d", e->db);
        const char *argv[2] = {"SELECT", db};
        size_t len[2] = {6, (size_t)n};
        if (!format(l, 2, argv, len))
            return false;
        l->hello_left++;
    }
    const char *ping = "PING";
    size_t plen = 4;
    l->hello_left++;
    return format(l, 1, &ping, &plen);
}

/* Starts connecting to the next address of this round. Returns false
 * (why in l->err) when none is left: the name is looked up again at the
 * next open. */
static bool connect_next(struct redis_link *l, uint64_t now)
{
    while (l->addr_tries < l->addrs.n) {
        unsigned i = (l->addr_good + l->addr_tries++) % l->addrs.n;
        const struct sockaddr *sa = (const struct sockaddr *)&l->addrs.addr[i];
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || (connect(fd, sa, l->addrs.len[i]) < 0 && errno != EINPROGRESS)) {
            fail(l, "cannot connect: ", strerror(errno));
            if (fd >= 0)
                close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        l->fd = fd;
        l->addr_cur = i;
        l->events = 0;
        l->phase = REDIS_LINK_CONNECTING;
        l->deadline_ms = now + REDIS_LINK_CONNECT_MS;
        watch(l, EPOLLIN | EPOLLOUT);
        return true;
    }
    redis_resolve_forget(l->host, l->port); /* looked up again next time */
    return false;
}

/* The address being tried failed: the next one, if any, is tried now. */
static bool try_next(struct redis_link *l, uint64_t now)
{
    if (l->fd >= 0)
        close(l->fd); /* leaves the epoll set with it */
    l->fd = -1;
    l->events = 0;
    return connect_next(l, now);
}

static void unwatch_lookup(struct redis_link *l)
{
    if (l->lookup_watched)
        loop_del(l->env->loop, redis_lookup_fd(l->lookup));
    l->lookup_watched = false;
}

/* The lookup under way is done (or not yet: true, nothing changes).
 * Returns false when it failed or no address could be connected to. */
static bool looked_up(struct redis_link *l, uint64_t now)
{
    char why[120];
    int rc = redis_lookup_result(l->lookup, &l->addrs, why, sizeof(why));
    if (rc == 0)
        return true;
    unwatch_lookup(l);
    redis_lookup_drop(l->lookup);
    l->lookup = NULL;
    if (rc < 0)
        return fail(l, "cannot resolve the host: ", why);
    l->addr_tries = 0;
    return connect_next(l, now);
}

/* Where the host's addresses come from: a numeric host, a recent lookup,
 * or a lookup off this thread (one at a time: a lookup that outlived a
 * deadline is waited for again, not started twice). */
static bool find_addresses(struct redis_link *l, uint64_t now)
{
    l->addr_tries = 0;
    if (l->lookup && !redis_lookup_is(l->lookup, l->host, l->port)) {
        unwatch_lookup(l); /* the probe moved to another source */
        redis_lookup_drop(l->lookup);
        l->lookup = NULL;
    }
    if (redis_resolve_numeric(l->host, l->port, &l->addrs) ||
        redis_resolve_kept(l->host, l->port, now, &l->addrs))
        return connect_next(l, now);
    l->addrs.n = 0;
    if (!l->lookup && !(l->lookup = redis_lookup_start(l->host, l->port)))
        return fail(l, "cannot resolve the host: ", "no thread for the lookup");
    if (!l->lookup_watched &&
        loop_add(l->env->loop, redis_lookup_fd(l->lookup), &l->io, EPOLLIN) == 0)
        l->lookup_watched = true;
    l->phase = REDIS_LINK_RESOLVING;
    l->deadline_ms = now + REDIS_LINK_RESOLVE_MS;
    return looked_up(l, now);
}

bool redis_link_open(struct redis_link *l, uint64_t now)
{
    l->err[0] = '\0';
    l->out_len = l->out_off = 0;
    l->reply_bytes = 0;
    l->reply_since_ms = 0;
    l->refused = false;
    if (l->reader)
        redisReaderFree(l->reader);
    if (!(l->reader = redisReaderCreate())) {
        fail(l, "", "out of memory");
        redis_link_close(l, now, false);
        return false;
    }
    l->last_read_ms = now;
    /* Queued now, written once connected. */
    if (!queue_hello(l) || !find_addresses(l, now)) {
        redis_link_close(l, now, false);
        return false;
    }
    return true;
}

static bool is_address(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static bool start_tls(struct redis_link *l)
{
    l->ssl = SSL_new(l->env->tls);
    if (!l->ssl || SSL_set_fd(l->ssl, l->fd) != 1)
        return fail(l, "", "cannot start TLS (out of memory)");
    /* The certificate must name the host of the URL (or of the cluster's
     * map): a name through SNI and the subject, an address through an IP
     * subjectAltName. */
    if (is_address(l->host)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(l->ssl), l->host);
    } else {
        SSL_set_tlsext_host_name(l->ssl, l->host);
        SSL_set1_host(l->ssl, l->host);
    }
    SSL_set_connect_state(l->ssl);
    l->phase = REDIS_LINK_TLS;
    return true;
}

static bool tls_failed(struct redis_link *l)
{
    long v = SSL_get_verify_result(l->ssl);
    if (v != X509_V_OK)
        return fail(l, "TLS: the server's certificate is refused: ",
                    X509_verify_cert_error_string(v));
    unsigned long e = ERR_get_error();
    char buf[160];
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return fail(l, "TLS handshake failed: ", e ? buf : "connection closed");
}

/* Drives the TLS handshake. Returns false on failure; l->phase moves on
 * when done. */
static bool handshake(struct redis_link *l)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(l->ssl);
    if (rc == 1) {
        l->phase = REDIS_LINK_HELLO;
        return true;
    }
    int e = SSL_get_error(l->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        watch(l, EPOLLIN);
        return true;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        watch(l, EPOLLIN | EPOLLOUT);
        return true;
    }
    return tls_failed(l);
}

/* Reads one chunk of what has come; l->more says whether there may be
 * more. Returns false when the connection ended. */
static bool read_in(struct redis_link *l, uint64_t now)
{
    char buf[READ_CHUNK];
    ssize_t n;
    l->more = false;
    if (l->ssl) {
        ERR_clear_error();
        int rc = SSL_read(l->ssl, buf, sizeof(buf));
        if (rc <= 0) {
            int e = SSL_get_error(l->ssl, rc);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return true;
            if (e == SSL_ERROR_ZERO_RETURN)
                return fail(l, "", "the node closed the connection");
            return tls_failed(l);
        }
        n = rc;
        /* epoll cannot see what OpenSSL holds already. */
        l->more = (size_t)n == sizeof(buf) || SSL_pending(l->ssl) > 0;
    } else {
        n = recv(l->fd, buf, sizeof(buf), 0);
        if (n == 0)
            return fail(l, "", "the node closed the connection");
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return true;
            return fail(l, "connection lost: ", strerror(errno));
        }
        l->more = (size_t)n == sizeof(buf);
    }
    l->last_read_ms = now;
    if (redisReaderFeed(l->reader, buf, (size_t)n) != REDIS_OK)
        return fail(l, "", "out of memory for a reply");
    if (!l->reply_since_ms)
        l->reply_since_ms = now;
    l->reply_bytes += (size_t)n;
    if (l->env->reply_max && l->reply_bytes > l->env->reply_max) {
        char why[80];
        snprintf(why, sizeof(why), "a reply longer than %zu bytes", l->env->reply_max);
        return fail(l, "", why);
    }
    return true;
}

/* A reply was taken whole (or none is complete): what the reader still
 * holds belongs to the next one, which is unfinished since its bytes came. */
static void reply_taken(struct redis_link *l)
{
    size_t left = l->reader->len - l->reader->pos;
    l->reply_bytes = left;
    l->reply_since_ms = left || l->reader->ridx >= 0 ? l->last_read_ms : 0;
}

/* An output buffer that grew while a node was slow or frozen is given back
 * once all of it is written: a sick node's backlog costs memory while it
 * lasts, not for the rest of the pod's life. Below this it is kept: busy
 * traffic is flushed at OUT_EAGER and never needs more, and freeing it after
 * every write would cost an allocation per pass. */
#define OUT_KEEP (1u << 20)

static void give_back(struct redis_link *l)
{
    if (l->out_cap <= OUT_KEEP)
        return;
    free(l->out);
    l->out = NULL;
    l->out_cap = 0;
}

static bool write_out(struct redis_link *l)
{
    while (l->out_off < l->out_len) {
        size_t left = l->out_len - l->out_off;
        ssize_t n;
        if (l->ssl) {
            ERR_clear_error();
            int rc = SSL_write(l->ssl, l->out + l->out_off, (int)(left > 1u << 30 ? 1u << 30 : left));
            if (rc <= 0) {
                int e = SSL_get_error(l->ssl, rc);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                    break;
                return tls_failed(l);
            }
            n = rc;
        } else {
            n = send(l->fd, l->out + l->out_off, left, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    break;
                return fail(l, "connection lost: ", strerror(errno));
            }
        }
        l->out_off += (size_t)n;
    }
    if (l->out_off == l->out_len) {
        l->out_off = l->out_len = 0;
        give_back(l);
    }
    watch(l, l->out_len ? EPOLLIN | EPOLLOUT : EPOLLIN);
    return true;
}

/* Takes the hello's answers; an error answer fails the link. */
static bool hello_answers(struct redis_link *l, bool *became_ready)
{
    while (l->hello_left > 0) {
        void *r = NULL;
        if (redisReaderGetReply(l->reader, &r) != REDIS_OK)
            return fail(l, "", "not speaking the Redis protocol");
        if (!r)
            return true;
        redisReply *rep = r;
        bool refused = rep->type == REDIS_REPLY_ERROR;
        if (refused) {
            fail(l, "refused the connection's setup (AUTH, SELECT or PING): ", rep->str);
            l->refused = true;
        }
        freeReplyObject(rep);
        if (refused)
            return false;
        l->hello_left--;
    }
    l->phase = REDIS_LINK_READY;
    l->deadline_ms = 0;
    reply_taken(l);
    l->addr_good = l->addr_cur;
    l->ever_ready = true;
    *became_ready = true;
    return true;
}

bool redis_link_io(struct redis_link *l, uint32_t events, uint64_t now, bool *became_ready)
{
    *became_ready = false;
    if (l->phase == REDIS_LINK_DOWN)
        return true;
    if (l->phase == REDIS_LINK_RESOLVING)
        return looked_up(l, now);
    if (l->phase == REDIS_LINK_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return true;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (soerr) {
            fail(l, "cannot connect: ", strerror(soerr));
            return try_next(l, now);
        }
        if (l->env->tls) {
            if (!start_tls(l))
                return false;
        } else {
            l->phase = REDIS_LINK_HELLO;
        }
    }
    if (l->phase == REDIS_LINK_TLS) {
        if (!handshake(l))
            return false;
        if (l->phase == REDIS_LINK_TLS)
            return true;
    }
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !read_in(l, now))
        return false;
    if (!write_out(l))
        return false;
    if (l->phase == REDIS_LINK_HELLO)
        return hello_answers(l, became_ready);
    return true;
}

int redis_link_reply(struct redis_link *l, redisReply **r)
{
    *r = NULL;
    if (l->phase != REDIS_LINK_READY)
        return 0;
    void *rep = NULL;
    if (redisReaderGetReply(l->reader, &rep) != REDIS_OK) {
        fail(l, "", "not speaking the Redis protocol");
        return -1;
    }
    *r = rep;
    if (rep || l->reader->ridx < 0)
        reply_taken(l);
    return rep ? 1 : 0;
}

/* Queued bytes past this are written without waiting for a flush. */
#define OUT_EAGER (64u * 1024)

bool redis_link_send(struct redis_link *l, int argc, const char **argv, const size_t *argvlen)
{
    if (!format(l, argc, argv, argvlen))
        return false;
    if (l->out_len - l->out_off < OUT_EAGER)
        return true;
    return redis_link_flush(l);
}

bool redis_link_flush(struct redis_link *l)
{
    if (l->phase != REDIS_LINK_HELLO && l->phase != REDIS_LINK_READY)
        return true;
    if (l->out_len == l->out_off || (l->events & EPOLLOUT))
        return true; /* nothing, or epoll says when the socket takes more */
    return write_out(l);
}

void redis_link_close(struct redis_link *l, uint64_t now, bool hung)
{
    if (l->ssl) {
        SSL_free(l->ssl);
        l->ssl = NULL;
    }
    if (l->fd >= 0)
        close(l->fd); /* leaves the epoll set with it */
    l->fd = -1;
    l->events = 0;
    unwatch_lookup(l); /* a lookup under way is kept for the next open */
    l->out_len = l->out_off = 0;
    give_back(l);
    l->hello_left = 0;
    l->deadline_ms = 0;
    if (now)
        l->retry_at_ms = now + redis_backoff_next(&l->bo);
    l->phase = REDIS_LINK_DOWN;
    if (hung)
        l->sick_until_ms = now + REDIS_LINK_SICK_MS;
}

bool redis_link_late(struct redis_link *l, uint64_t owed_since, uint64_t now)
{
    if (l->phase == REDIS_LINK_READY && owed_since && now >= owed_since + REDIS_LINK_COMMAND_MS) {
        snprintf(l->err, sizeof(l->err), "%.100s:%u: no answer for %d ms", l->host, l->port,
                 REDIS_LINK_COMMAND_MS);
        return true;
    }
    if (l->phase == REDIS_LINK_READY && l->reply_since_ms &&
        now >= l->reply_since_ms + REDIS_LINK_COMMAND_MS) {
        snprintf(l->err, sizeof(l->err), "%.100s:%u: a reply unfinished for %d ms", l->host,
                 l->port, REDIS_LINK_COMMAND_MS);
        return true;
    }
    if (l->phase == REDIS_LINK_DOWN || l->phase == REDIS_LINK_READY || now < l->deadline_ms)
        return false;
    if (l->phase == REDIS_LINK_RESOLVING) {
        snprintf(l->err, sizeof(l->err), "%.100s:%u: no answer from the resolver within %d ms",
                 l->host, l->port, REDIS_LINK_RESOLVE_MS);
        return true;
    }
    /* An address that does not answer: the next one has its own deadline. */
    if (l->phase == REDIS_LINK_CONNECTING && try_next(l, now))
        return false;
    snprintf(l->err, sizeof(l->err), "%.100s:%u: not ready within %d ms (connect, TLS, AUTH)",
             l->host, l->port, REDIS_LINK_CONNECT_MS);
    return true;
}

void redis_link_worked(struct redis_link *l)
{
    redis_backoff_reset(&l->bo);
    l->sick_until_ms = 0;
}

bool redis_link_sick(const struct redis_link *l, uint64_t now)
{
    return now < l->sick_until_ms;
}

bool redis_link_again(const struct redis_link *l, unsigned reads)
{
    if (!l->more || l->phase == REDIS_LINK_DOWN)
        return false;
    /* A plain socket's rest is seen by epoll; what OpenSSL holds is not. */
    return reads < READS_PER_EVENT || (l->ssl && SSL_pending(l->ssl) > 0);
}
