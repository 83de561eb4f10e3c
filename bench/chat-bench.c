/* chat-bench.c: the load generator for chat-api (build/chat-bench).
 *
 * DESIGN: one thread, one epoll loop, like the server. It opens
 * rooms x members WebSocket connections from several 127.0.0.x source
 * addresses, spread over one or more server ports; some members publish.
 * Every message carries its sender, a per-sender sequence number and the
 * time it was *scheduled* to be sent, so
 *   - every receiver checks each sender's sequence: loss, duplicates and
 *     reordering are counted exactly;
 *   - latency is measured from the scheduled time: a generator that falls
 *     behind its schedule shows up as latency instead of hiding it.
 * Publishers run closed loop (at most --window of their own messages
 * unacknowledged; the copy a sender gets back is its acknowledgement) or
 * open loop at a fixed --rate. The server's CPU time comes from
 * /proc/PID/stat, so throughput is reported per server CPU-second; the
 * generator's own CPU time flags runs where it, not the server, was the
 * limit. Results are one JSON object on stdout. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "ws/frame.h"

#define MAX_PORTS 16
#define MAX_PIDS 16
#define READ_BUF (256 * 1024)
#define HIST_SUB 32
#define HIST_BUCKETS (64 * HIST_SUB)

enum gstate { G_CONNECTING, G_HANDSHAKE, G_OPEN, G_CLOSED };

/* How a connection's handshake ended (the storm scenario counts them). */
enum goutcome {
    GO_NONE,
    GO_WELCOME,        /* 101 and the server's welcome */
    GO_REFUSED_503,    /* answered 503 */
    GO_REFUSED_OTHER,  /* answered with another status */
    GO_RESET,          /* reset before an answer */
    GO_CLOSED,         /* closed before an answer */
    GO_CONNECT_FAILED, /* TCP connect failed */
    GO_COUNT,
};
static const char *const outcome_names[GO_COUNT] = {
    "unsettled", "welcomed",          "refused_503",   "refused_other",
    "reset",     "closed_unanswered", "connect_failed"};

struct gconn {
    int fd;
    uint8_t state;
    bool reads;    /* false: the never-reading member of the slow scenario */
    bool welcomed; /* the server's welcome arrived */
    uint8_t outcome; /* enum goutcome */
    int room;
    int pub; /* publisher id, or -1 */
    char hbuf[1024];
    size_t hlen;
    struct ws_frame_parser parser;
    z_stream *zin; /* --deflate, when the server agreed: this client's inflater */
    uint32_t *expect; /* next sequence expected from each publisher of the room */
    uint64_t received;
    /* publisher side */
    uint64_t sent, acked;
    uint64_t next_ns; /* open loop: when the next message is due */
    uint8_t *wbuf;    /* bytes the socket did not take yet */
    size_t wlen, wcap;
};

struct opts {
    const char *scenario;
    int ports[MAX_PORTS];
    int nports;
    int pids[MAX_PIDS];
    int npids;
    int rooms, members, pubs_per_room;
    int window;
    double rate; /* messages/s per publisher; 0: closed loop */
    double duration, warmup;
    int payload;
    int sources;
    int connect_mode; /* handshakes per second instead of messages */
    int idle_mode;    /* RSS per idle connection */
    int slow;         /* one member never reads */
    int concurrency;  /* connect mode: handshakes in flight */
    int spread;       /* >0: a room's members sit on this many of the ports (fleet) */
    int storm;        /* connections opened at once, each sending its head at connect */
    int deflate;      /* offer permessage-deflate; inflate what comes compressed */
    int text;         /* chat-like payloads: varied words, 150-900 characters */
};

static struct opts O = {
    .scenario = "custom",
    .rooms = 1,
    .members = 100,
    .pubs_per_room = 1,
    .window = 32,
    .duration = 5,
    .warmup = 1,
    .payload = 64,
    .sources = 8,
    .concurrency = 256,
};

static struct gconn *conns;
static int nconns;
static int epfd;
static uint8_t *rbuf;
static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_n, hist_max;
static bool measuring;
static bool sending = true; /* false once the measured window ends: drain only */
static uint64_t deliveries, m_deliveries, sent_total, m_sent;
static uint64_t m_wire;             /* bytes read from the servers while measuring */
static uint64_t m_compressed;       /* deliveries that came compressed while measuring */
static uint8_t *zbuf;               /* one inflated message */
#define ZBUF (1 << 20)
static uint64_t dup_or_reorder, gaps, gap_msgs;
static uint64_t opened, failed;
static uint64_t outcomes[GO_COUNT];
static uint64_t last_welcome_ns;
static char pad[65536];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "chat-bench: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ---- latency histogram: 32 linear steps per power of two, in ns ---- */

static int hist_index(uint64_t v)
{
    if (v < HIST_SUB)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 5;
    return (shift + 1) * HIST_SUB + (int)((v >> shift) & (HIST_SUB - 1));
}

static uint64_t hist_value(int i)
{
    if (i < HIST_SUB)
        return (uint64_t)i;
    int shift = i / HIST_SUB - 1;
    uint64_t sub = (uint64_t)(i % HIST_SUB) | HIST_SUB;
    return (sub << shift) + ((1ull << shift) >> 1); /* middle of the bucket */
}

static void hist_add(uint64_t v)
{
    int i = hist_index(v);
    if (i >= HIST_BUCKETS)
        i = HIST_BUCKETS - 1;
    hist[i]++;
    hist_n++;
    if (v > hist_max)
        hist_max = v;
}

static double hist_pct(double p)
{
    if (!hist_n)
        return 0;
    uint64_t want = (uint64_t)(p * (double)hist_n);
    if (want >= hist_n)
        want = hist_n - 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen > want)
            return (double)hist_value(i) / 1000.0;
    }
    return (double)hist_max / 1000.0;
}

/* ---- /proc ---- */

static double proc_cpu_seconds(int pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    unsigned long long ut = 0, st = 0;
    /* Fields after the command: state is 3; utime and stime are 14 and 15. */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double servers_cpu(void)
{
    double s = 0;
    for (int i = 0; i < O.npids; i++)
        s += proc_cpu_seconds(O.pids[i]);
    return s;
}

/* A line "<key>: N kB" of /proc/PID/status (VmRSS, RssAnon, RssFile). */
static long proc_status_kb(int pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long kb = 0;
    size_t n = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            kb = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- connections ---- */

static void arm(struct gconn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl");
}

static void gclose(struct gconn *c)
{
    if (c->state == G_CLOSED)
        return;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    /* Reset instead of FIN: the connect scenario opens far more connections
     * than TIME_WAIT would leave ports for. */
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(c->fd);
    c->state = G_CLOSED;
    ws_frame_parser_free(&c->parser);
}

/* Which port connection idx goes to: round robin, or with --spread K the
 * members of room r alternate over K ports spaced evenly, starting at r, so
 * each port hosts K/ports of the rooms. */
static int port_index(const struct gconn *c, int idx)
{
    if (O.spread <= 0 || c->room < 0)
        return idx % O.nports;
    int k = idx % O.members;
    return (c->room + (k % O.spread) * (O.nports / O.spread)) % O.nports;
}

static void start_connect(struct gconn *c, int idx)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!c->reads) {
        int small = 4096;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    }
    /* Spread over 127.0.0.1 .. 127.0.0.N: one source address has only about
     * 28000 ports. */
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(idx % O.sources));
    if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0)
        die("bind");
    struct sockaddr_in dst = {.sin_family = AF_INET};
    dst.sin_addr.s_addr = htonl(0x7f000001u);
    dst.sin_port = htons((uint16_t)O.ports[port_index(c, idx)]);
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS)
        die("connect");
    c->state = G_CONNECTING;
    c->hlen = 0;
    c->welcomed = false;
    c->outcome = GO_NONE;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl add");
}

/* Ends a connection whose handshake did not get through, saying how. */
static void fail_conn(struct gconn *c, enum goutcome how)
{
    failed++;
    if (c->outcome == GO_NONE) {
        c->outcome = (uint8_t)how;
        outcomes[how]++;
    }
    gclose(c);
}

/* How a failed read ended a connection. */
static enum goutcome read_failure(ssize_t n)
{
    return n == 0 ? GO_CLOSED : errno == ECONNRESET ? GO_RESET : GO_CLOSED;
}

static void send_bytes(struct gconn *c, const uint8_t *b, size_t n)
{
    if (c->wlen == 0) {
        ssize_t w = write(c->fd, b, n);
        if (w < 0) {
            if (errno != EAGAIN) {
                failed++;
                gclose(c);
                return;
            }
            w = 0;
        }
        if ((size_t)w == n)
            return;
        b += w;
        n -= (size_t)w;
        arm(c, EPOLLIN | EPOLLOUT);
    }
    if (c->wlen + n > c->wcap) {
        c->wcap = (c->wlen + n) * 2;
        c->wbuf = realloc(c->wbuf, c->wcap);
    }
    memcpy(c->wbuf + c->wlen, b, n);
    c->wlen += n;
}

/* Words a chat message is made of (--text). */
static const char *const WORDS[] = {
    "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "servers",
    "fan", "out", "messages", "to", "every", "member", "of", "room", "in", "order", "and",
    "nobody", "loses", "byte", "hello", "again", "release", "deploy", "tomorrow", "lunch",
    "coffee", "review", "merge", "ticket", "meeting", "at", "noon", "thanks", "see", "you",
    "later", "build", "is", "green", "red", "who", "broke", "it", "ok", "sure", "why", "not"};

/* Writes 150-900 characters of words, varied by seed, at out. Returns the length. */
static int chat_text(char *out, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    int len = 0, target = 150 + (int)(x % 751);
    while (len < target) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const char *w = WORDS[x % (sizeof(WORDS) / sizeof(WORDS[0]))];
        size_t n = strlen(w);
        memcpy(out + len, w, n);
        out[len + (int)n] = ' ';
        len += (int)n + 1;
    }
    return len;
}

static void send_message(struct gconn *c, uint64_t scheduled_ns)
{
    char json[70000];
    int head = snprintf(json, sizeof(json), "{\"data\":{\"s\":%d,\"q\":%llu,\"t\":%llu,\"p\":\"",
                        c->pub, (unsigned long long)c->sent, (unsigned long long)scheduled_ns);
    int want = O.payload - head - 3;
    if (want < 0)
        want = 0;
    if (O.text)
        want = chat_text(json + head, c->sent * 2654435761u + (uint64_t)c->pub);
    else
        memcpy(json + head, pad, (size_t)want);
    int n = head + want;
    memcpy(json + n, "\"}}", 3);
    n += 3;
    uint8_t frame[70100];
    uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    size_t fl =
        ws_frame_encode_masked(frame, sizeof(frame), WS_OP_TEXT, true, json, (size_t)n, mask);
    c->sent++;
    sent_total++;
    if (measuring)
        m_sent++;
    send_bytes(c, frame, fl);
}

/* Reads the digits at *p, advancing it. */
static uint64_t digits(const char **p, const char *end)
{
    uint64_t v = 0;
    while (*p < end && **p >= '0' && **p <= '9')
        v = v * 10 + (uint64_t)(*(*p)++ - '0');
    return v;
}

/* Expects the literal lit at *p, advancing past it. */
static bool expect_lit(const char **p, const char *end, const char *lit, size_t n)
{
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
        return false;
    *p += n;
    return true;
}

static void on_message(struct gconn *c, const uint8_t *data, size_t len)
{
    const char *s = (const char *)data, *end = s + len;
    const char *d = memmem(s, len, "\"data\":{\"s\":", 12);
    if (!d) {
        if (!c->welcomed && memmem(s, len, "\"welcome\"", 9)) {
            c->welcomed = true;
            c->outcome = GO_WELCOME;
            outcomes[GO_WELCOME]++;
            last_welcome_ns = now_ns();
        }
        return;
    }
    /* The server carries data byte for byte, so its fields are in the order
     * we wrote them: one pass, no searching. */
    const char *p = d + 12;
    int sender = (int)digits(&p, end);
    if (!expect_lit(&p, end, ",\"q\":", 5))
        return;
    uint64_t q = digits(&p, end);
    if (!expect_lit(&p, end, ",\"t\":", 5))
        return;
    uint64_t t = digits(&p, end);
    uint64_t now = now_ns();
    int slot = sender - c->room * O.pubs_per_room;
    if (slot < 0 || slot >= O.pubs_per_room)
        return;
    if (q == c->expect[slot]) {
        c->expect[slot]++;
    } else if (q > c->expect[slot]) {
        gaps++;
        gap_msgs += q - c->expect[slot];
        c->expect[slot] = (uint32_t)q + 1;
    } else {
        dup_or_reorder++;
    }
    c->received++;
    deliveries++;
    if (measuring) {
        m_deliveries++;
        hist_add(now > t ? now - t : 0);
    }
    if (sender == c->pub) {
        c->acked++;
        if (O.rate == 0 && sending)
            while (c->sent - c->acked < (uint64_t)O.window && c->state == G_OPEN)
                send_message(c, now_ns());
    }
}

/* A message event: inflated first when it came compressed (RFC 7692 7.2.2:
 * the tail 00 00 ff ff appended; the server may keep context). */
static void on_data(struct gconn *c, const struct ws_event *ev)
{
    if (!ev->deflated) {
        on_message(c, ev->data, ev->len);
        return;
    }
    static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
    z_stream *z = c->zin;
    z->next_out = zbuf;
    z->avail_out = ZBUF;
    const uint8_t *part[2] = {ev->data, tail};
    size_t len[2] = {ev->len, 4};
    for (int k = 0; k < 2; k++) {
        z->next_in = (Bytef *)(uintptr_t)part[k];
        z->avail_in = (uInt)len[k];
        int rc = inflate(z, Z_SYNC_FLUSH);
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            fprintf(stderr, "chat-bench: a compressed message does not inflate\n");
            gclose(c);
            return;
        }
    }
    if (measuring)
        m_compressed++;
    on_message(c, zbuf, ZBUF - z->avail_out);
}

static void on_handshake_bytes(struct gconn *c)
{
    ssize_t n = read(c->fd, c->hbuf + c->hlen, sizeof(c->hbuf) - c->hlen - 1);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        fail_conn(c, read_failure(n));
        return;
    }
    c->hlen += (size_t)n;
    c->hbuf[c->hlen] = '\0';
    char *end = strstr(c->hbuf, "\r\n\r\n");
    if (!end)
        return;
    if (strncmp(c->hbuf, "HTTP/1.1 101", 12) != 0) {
        fail_conn(c, strncmp(c->hbuf, "HTTP/1.1 503", 12) == 0 ? GO_REFUSED_503 : GO_REFUSED_OTHER);
        return;
    }
    c->state = G_OPEN;
    opened++;
    ws_frame_parser_init(&c->parser, WS_ROLE_CLIENT, 1 << 20);
    if (O.deflate && strcasestr(c->hbuf, "permessage-deflate")) {
        c->parser.deflate = 1;
        if (!c->zin) {
            c->zin = calloc(1, sizeof(*c->zin));
            if (!c->zin || inflateInit2(c->zin, -15) != Z_OK)
                die("inflateInit2");
        } else {
            inflateReset(c->zin);
        }
    }
    if (!c->reads) {
        arm(c, 0); /* the slow member: never reads again */
        return;
    }
    /* Frames that came with the 101 answer. */
    size_t rest = c->hlen - (size_t)(end + 4 - c->hbuf);
    if (rest) {
        memcpy(rbuf, end + 4, rest);
        size_t off = 0;
        while (off < rest) {
            struct ws_event ev;
            off += ws_frame_parse(&c->parser, rbuf + off, rest - off, &ev);
            if (ev.type == WS_EV_NONE)
                break;
            if (ev.type == WS_EV_MESSAGE)
                on_data(c, &ev);
        }
    }
}

static void on_readable(struct gconn *c)
{
    ssize_t n = read(c->fd, rbuf, READ_BUF);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        if (c->outcome == GO_NONE)
            fail_conn(c, read_failure(n)); /* upgraded, but no welcome came */
        else
            gclose(c);
        return;
    }
    if (measuring)
        m_wire += (uint64_t)n;
    size_t off = 0;
    while (off < (size_t)n && c->state == G_OPEN) {
        struct ws_event ev;
        off += ws_frame_parse(&c->parser, rbuf + off, (size_t)n - off, &ev);
        if (ev.type == WS_EV_NONE)
            break;
        if (ev.type == WS_EV_MESSAGE)
            on_data(c, &ev);
        else if (ev.type == WS_EV_PING) {
            uint8_t f[200];
            uint8_t mask[4] = {1, 2, 3, 4};
            send_bytes(
                c, f,
                ws_frame_encode_masked(f, sizeof(f), WS_OP_PONG, true, ev.data, ev.len, mask));
        } else if (ev.type == WS_EV_CLOSE || ev.type == WS_EV_ERROR) {
            gclose(c);
        }
    }
}

static void on_event(struct gconn *c, uint32_t events)
{
    if (c->state == G_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            errno = err;
            fail_conn(c, err == ECONNRESET ? GO_RESET : GO_CONNECT_FAILED);
            return;
        }
        char req[512];
        int n = snprintf(req, sizeof(req),
                         "GET /api/chat-api/ws/bench-%d HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n%s\r\n",
                         c->room,
                         O.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                     "client_max_window_bits\r\n"
                                   : "");
        c->state = G_HANDSHAKE;
        arm(c, EPOLLIN);
        if (write(c->fd, req, (size_t)n) != n)
            fail_conn(c, errno == ECONNRESET ? GO_RESET : GO_CLOSED);
        return;
    }
    if ((events & EPOLLOUT) && c->wlen) {
        ssize_t w = write(c->fd, c->wbuf, c->wlen);
        if (w > 0) {
            memmove(c->wbuf, c->wbuf + w, c->wlen - (size_t)w);
            c->wlen -= (size_t)w;
        }
        if (c->wlen == 0)
            arm(c, c->reads ? EPOLLIN : 0);
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    if (c->state == G_HANDSHAKE)
        on_handshake_bytes(c);
    else if (c->state == G_OPEN)
        on_readable(c);
}

static int poll_once(int timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(epfd, evs, 512, timeout_ms);
    for (int i = 0; i < n; i++) {
        on_event(evs[i].data.ptr, evs[i].events);
    }
    return n;
}

/* ---- scenarios ---- */

static void open_all(void)
{
    nconns = O.rooms * O.members;
    conns = calloc((size_t)nconns, sizeof(*conns));
    for (int i = 0; i < nconns; i++) {
        struct gconn *c = &conns[i];
        c->room = i / O.members;
        int k = i % O.members;
        c->pub = k < O.pubs_per_room ? c->room * O.pubs_per_room + k : -1;
        c->reads = !(O.slow && k == O.members - 1);
        c->expect = calloc((size_t)O.pubs_per_room, sizeof(uint32_t));
        c->state = G_CLOSED;
    }
    /* Connect in waves, so the listen backlog is never the limit. */
    int next = 0;
    uint64_t deadline = now_ns() + 60ull * 1000000000ull;
    while (now_ns() < deadline) {
        while (next < nconns && (uint64_t)next - opened - failed < 500)
            start_connect(&conns[next], next), next++;
        poll_once(10);
        uint64_t welcomed = 0;
        for (int i = 0; i < next; i++)
            welcomed += conns[i].welcomed || !conns[i].reads;
        if (next == nconns && welcomed + failed >= (uint64_t)nconns)
            break;
    }
    if (failed) {
        fprintf(stderr, "chat-bench: %llu of %d connections failed\n", (unsigned long long)failed,
                nconns);
        exit(1);
    }
}

static void print_common(double wall, double srv_cpu, double gen_cpu)
{
    printf("\"duration_s\":%.3f,\"server_cpu_s\":%.3f,\"server_cores\":%.3f,"
           "\"generator_cores\":%.3f,\"generator_bound\":%s",
           wall, srv_cpu, srv_cpu / wall, gen_cpu / wall, gen_cpu / wall > 0.9 ? "true" : "false");
}

static void run_messages(void)
{
    open_all();
    int npubs = O.rooms * O.pubs_per_room;
    uint64_t t0 = now_ns();
    uint64_t interval = O.rate > 0 ? (uint64_t)(1e9 / O.rate) : 0;
    for (int i = 0; i < nconns; i++) {
        struct gconn *c = &conns[i];
        if (c->pub < 0 || c->state != G_OPEN)
            continue;
        if (O.rate > 0)
            c->next_ns = t0 + (uint64_t)c->pub * interval / (uint64_t)(npubs ? npubs : 1);
        else
            while (c->sent < (uint64_t)O.window)
                send_message(c, now_ns());
    }
    uint64_t warm_end = t0 + (uint64_t)(O.warmup * 1e9);
    uint64_t end = warm_end + (uint64_t)(O.duration * 1e9);
    double cpu0 = 0, gcpu0 = 0;
    uint64_t m0 = 0;
    for (;;) {
        uint64_t now = now_ns();
        if (!measuring && now >= warm_end) {
            measuring = true;
            cpu0 = servers_cpu();
            gcpu0 = self_cpu();
            m0 = now;
        }
        if (now >= end)
            break;
        if (O.rate > 0) {
            for (int i = 0; i < nconns; i++) {
                struct gconn *c = &conns[i];
                if (c->pub < 0 || c->state != G_OPEN)
                    continue;
                while (c->next_ns <= now) {
                    send_message(c, c->next_ns);
                    c->next_ns += interval;
                }
            }
        }
        poll_once(O.rate > 0 ? 1 : 10);
    }
    measuring = false;
    sending = false;
    double wall = (double)(now_ns() - m0) / 1e9;
    double srv_cpu = servers_cpu() - cpu0, gen_cpu = self_cpu() - gcpu0;

    /* Drain: wait until every reader has every message sent to its room. */
    uint64_t drain_end = now_ns() + 5ull * 1000000000ull;
    uint64_t loss = 0;
    for (;;) {
        loss = 0;
        for (int i = 0; i < nconns; i++) {
            struct gconn *c = &conns[i];
            if (!c->reads || c->state != G_OPEN)
                continue;
            for (int k = 0; k < O.pubs_per_room; k++) {
                struct gconn *p = &conns[c->room * O.members + k];
                if (p->sent > c->expect[k])
                    loss += p->sent - c->expect[k];
            }
        }
        if (loss == 0 || now_ns() > drain_end)
            break;
        poll_once(10);
    }
    uint64_t closed = 0;
    for (int i = 0; i < nconns; i++)
        closed += conns[i].reads && conns[i].state != G_OPEN;

    printf("{\"scenario\":\"%s\",\"connections\":%d,\"rooms\":%d,\"members\":%d,\"publishers\":%d,"
           "\"mode\":\"%s\",\"window\":%d,\"rate_per_publisher\":%.1f,\"payload\":%d,",
           O.scenario, nconns, O.rooms, O.members, npubs, O.rate > 0 ? "open" : "closed", O.window,
           O.rate, O.payload);
    print_common(wall, srv_cpu, gen_cpu);
    printf(",\"messages_sent\":%llu,\"deliveries\":%llu,\"deliveries_per_s\":%.0f,"
           "\"deliveries_per_server_cpu_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
           "\"max_us\":%.1f,\"loss\":%llu,\"gaps\":%llu,\"gap_messages\":%llu,"
           "\"dup_or_reorder\":%llu,\"readers_closed\":%llu,\"wire_bytes_per_delivery\":%.1f,"
           "\"compressed_share\":%.3f",
           (unsigned long long)m_sent, (unsigned long long)m_deliveries,
           (double)m_deliveries / wall, srv_cpu > 0 ? (double)m_deliveries / srv_cpu : 0,
           hist_pct(0.50), hist_pct(0.99), hist_pct(0.999), (double)hist_max / 1000.0,
           (unsigned long long)loss, (unsigned long long)gaps, (unsigned long long)gap_msgs,
           (unsigned long long)dup_or_reorder, (unsigned long long)closed,
           m_deliveries ? (double)m_wire / (double)m_deliveries : 0,
           m_deliveries ? (double)m_compressed / (double)m_deliveries : 0);
    if (O.spread > 0) {
        /* Every message each room's publishers sent, warm-up included, and
         * which ports host the room: for per-pod accounting. */
        printf(",\"room_sent\":[");
        for (int r = 0; r < O.rooms; r++) {
            uint64_t n = 0;
            for (int k = 0; k < O.pubs_per_room; k++)
                n += conns[r * O.members + k].sent;
            printf("%s%llu", r ? "," : "", (unsigned long long)n);
        }
        printf("],\"room_ports\":[");
        for (int r = 0; r < O.rooms; r++) {
            printf("%s[", r ? "," : "");
            for (int k = 0; k < O.members; k++) {
                int idx = r * O.members + k;
                printf("%s%d", k ? "," : "", O.ports[port_index(&conns[idx], idx)]);
            }
            printf("]");
        }
        printf("]");
    }
    printf("}\n");
}

/* Server memory per idle connection: the growth of its anonymous memory
 * (heap, stacks: RssAnon) over the connections. The growth of file-backed
 * pages (RssFile: library code touched for the first time, such as SHA-1 for
 * the first handshake) is a one-time cost shared with every other process,
 * not per connection: it is reported beside, not counted. */
static void run_idle(void)
{
    long anon0 = proc_status_kb(O.pids[0], "RssAnon");
    long file0 = proc_status_kb(O.pids[0], "RssFile");
    long rss0 = proc_status_kb(O.pids[0], "VmRSS");
    open_all();
    /* The welcome proves each connection is adopted by a worker; what the
     * burst of handshakes left free is measured once the server has had a
     * moment to give it back: the figure settles when it has not moved for
     * half a second (samples 100 ms apart; at most 5 s). */
    long anon1 = proc_status_kb(O.pids[0], "RssAnon");
    for (int same = 0, i = 0; same < 5 && i < 50; i++) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        long now = proc_status_kb(O.pids[0], "RssAnon");
        same = now == anon1 ? same + 1 : 0;
        anon1 = now;
    }
    long file1 = proc_status_kb(O.pids[0], "RssFile");
    long rss1 = proc_status_kb(O.pids[0], "VmRSS");
    printf("{\"scenario\":\"%s\",\"connections\":%d,\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,"
           "\"anon_growth_kb\":%ld,\"file_growth_kb\":%ld,"
           "\"bytes_per_connection\":%.0f,\"rss_bytes_per_connection\":%.0f,"
           "\"loss\":0,\"dup_or_reorder\":0}\n",
           O.scenario, nconns, rss0, rss1, anon1 - anon0, file1 - file0,
           (double)(anon1 - anon0) * 1024.0 / nconns, (double)(rss1 - rss0) * 1024.0 / nconns);
}

static void run_connect(void)
{
    nconns = O.concurrency;
    conns = calloc((size_t)nconns, sizeof(*conns));
    for (int i = 0; i < nconns; i++) {
        conns[i].reads = true;
        conns[i].pub = -1;
        conns[i].expect = calloc(1, sizeof(uint32_t));
    }
    uint64_t done = 0, counter = 0;
    for (int i = 0; i < nconns; i++)
        start_connect(&conns[i], (int)counter++);
    uint64_t t0 = now_ns(), warm_end = t0 + (uint64_t)(O.warmup * 1e9);
    uint64_t end = warm_end + (uint64_t)(O.duration * 1e9);
    double cpu0 = 0, gcpu0 = 0;
    uint64_t m0 = 0, done0 = 0;
    bool started = false;
    while (now_ns() < end) {
        if (!started && now_ns() >= warm_end) {
            started = true;
            cpu0 = servers_cpu();
            gcpu0 = self_cpu();
            m0 = now_ns();
            done0 = done;
        }
        poll_once(5);
        for (int i = 0; i < nconns; i++) {
            struct gconn *c = &conns[i];
            if (c->state == G_OPEN && c->welcomed) {
                done++;
                gclose(c);
            }
            if (c->state == G_CLOSED)
                start_connect(c, (int)counter++);
        }
    }
    double wall = (double)(now_ns() - m0) / 1e9;
    double srv_cpu = servers_cpu() - cpu0, gen_cpu = self_cpu() - gcpu0;
    printf("{\"scenario\":\"%s\",\"concurrency\":%d,", O.scenario, nconns);
    print_common(wall, srv_cpu, gen_cpu);
    printf(",\"handshakes\":%llu,\"handshakes_per_s\":%.0f,\"handshakes_per_server_cpu_s\":%.0f,"
           "\"failed\":%llu,\"loss\":0,\"dup_or_reorder\":0}\n",
           (unsigned long long)(done - done0), (double)(done - done0) / wall,
           srv_cpu > 0 ? (double)(done - done0) / srv_cpu : 0, (unsigned long long)failed);
}

/* The reconnect storm: --storm N connections opened at once, as when a pod
 * dies and its clients come back to the others, each sending its whole head
 * in one write as soon as TCP connects, and kept open. Reports how each
 * ended (welcome, 503, reset, closed unanswered) and how long until the
 * last welcome, then holds them until standard input ends. */
static void run_storm(void)
{
    nconns = O.storm;
    conns = calloc((size_t)nconns, sizeof(*conns));
    for (int i = 0; i < nconns; i++) {
        conns[i].room = i % O.rooms;
        conns[i].reads = true;
        conns[i].pub = -1;
        conns[i].expect = calloc(1, sizeof(uint32_t));
    }
    double cpu0 = servers_cpu();
    uint64_t t0 = now_ns();
    /* Each client writes its head as soon as TCP connects, as a real one
     * does: the connections still to be opened wait for that. */
    for (int i = 0; i < nconns; i++) {
        start_connect(&conns[i], i);
        if (i % 64 == 63)
            poll_once(0);
    }
    uint64_t issued = now_ns();
    uint64_t deadline = t0 + (uint64_t)(O.duration * 1e9);
    while (now_ns() < deadline) {
        uint64_t settled = 0;
        for (int k = 1; k < GO_COUNT; k++)
            settled += outcomes[k];
        if (settled >= (uint64_t)nconns)
            break;
        poll_once(10);
    }
    double srv_cpu = servers_cpu() - cpu0;
    uint64_t settled = 0;
    for (int k = 1; k < GO_COUNT; k++)
        settled += outcomes[k];
    outcomes[GO_NONE] = (uint64_t)nconns - settled;
    double last = last_welcome_ns ? (double)(last_welcome_ns - t0) / 1e9 : 0;
    printf("{\"scenario\":\"%s\",\"connections\":%d,\"connects_issued_s\":%.3f,", O.scenario,
           nconns, (double)(issued - t0) / 1e9);
    for (int k = 0; k < GO_COUNT; k++)
        printf("\"%s\":%llu,", outcome_names[k], (unsigned long long)outcomes[k]);
    printf("\"last_welcome_s\":%.3f,\"handshakes_per_s\":%.0f,\"server_cpu_s\":%.3f,"
           "\"handshakes_per_server_cpu_s\":%.0f,\"loss\":0,\"dup_or_reorder\":0}\n",
           last, last > 0 ? (double)outcomes[GO_WELCOME] / last : 0, srv_cpu,
           srv_cpu > 0 ? (double)outcomes[GO_WELCOME] / srv_cpu : 0);
    fflush(stdout);
    /* Hold the connections until standard input ends, so that several
     * generators can stand together against MAX_CONNECTIONS. */
    char sink[256];
    while (read(0, sink, sizeof(sink)) > 0)
        ;
}

static void parse_list(const char *s, int *out, int *n, int max)
{
    *n = 0;
    while (*s && *n < max) {
        out[(*n)++] = atoi(s);
        const char *comma = strchr(s, ',');
        if (!comma)
            break;
        s = comma + 1;
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: chat-bench --port P[,P2] --server-pid PID[,PID2] [options]\n"
            "  --scenario NAME     label for the results\n"
            "  --rooms N --members N --publishers N (per room)\n"
            "  --window W          closed loop: own messages in flight per publisher (default 32)\n"
            "  --rate R            open loop: messages/s per publisher\n"
            "  --duration S --warmup S --payload BYTES --sources N\n"
            "  --slow              the last member of each room never reads\n"
            "  --idle              report server RSS per idle connection\n"
            "  --connect           report handshakes per second (--concurrency N)\n"
            "  --storm N           open N connections at once (over --rooms rooms), keep them,\n"
            "                      report welcomes, 503s, resets and the time to the last\n"
            "                      welcome (--duration: how long to wait for them all)\n"
            "  --spread K          a room's members on K of the ports, rooms spread evenly\n"
            "                      (also reports each room's messages sent)\n"
            "  --deflate           offer permessage-deflate, inflate what comes compressed\n"
            "                      (reports wire bytes per delivery and the compressed share)\n"
            "  --text              chat-like payloads: varied words, 150-900 characters\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"scenario", 1, 0, 'n'},
        {"port", 1, 0, 'p'},
        {"server-pid", 1, 0, 'P'},
        {"rooms", 1, 0, 'r'},
        {"members", 1, 0, 'm'},
        {"publishers", 1, 0, 'k'},
        {"window", 1, 0, 'w'},
        {"rate", 1, 0, 'R'},
        {"duration", 1, 0, 'd'},
        {"warmup", 1, 0, 'W'},
        {"payload", 1, 0, 'b'},
        {"sources", 1, 0, 's'},
        {"slow", 0, 0, 'S'},
        {"idle", 0, 0, 'I'},
        {"connect", 0, 0, 'C'},
        {"concurrency", 1, 0, 'c'},
        {"spread", 1, 0, 'x'},
        {"storm", 1, 0, 'T'},
        {"deflate", 0, 0, 'D'},
        {"text", 0, 0, 'X'},
        {0, 0, 0, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'n': O.scenario = optarg; break;
        case 'p': parse_list(optarg, O.ports, &O.nports, MAX_PORTS); break;
        case 'P': parse_list(optarg, O.pids, &O.npids, MAX_PIDS); break;
        case 'r': O.rooms = atoi(optarg); break;
        case 'm': O.members = atoi(optarg); break;
        case 'k': O.pubs_per_room = atoi(optarg); break;
        case 'w': O.window = atoi(optarg); break;
        case 'R': O.rate = atof(optarg); break;
        case 'd': O.duration = atof(optarg); break;
        case 'W': O.warmup = atof(optarg); break;
        case 'b': O.payload = atoi(optarg); break;
        case 's': O.sources = atoi(optarg); break;
        case 'S': O.slow = 1; break;
        case 'I': O.idle_mode = 1; break;
        case 'C': O.connect_mode = 1; break;
        case 'c': O.concurrency = atoi(optarg); break;
        case 'x': O.spread = atoi(optarg); break;
        case 'T': O.storm = atoi(optarg); break;
        case 'D': O.deflate = 1; break;
        case 'X': O.text = 1; break;
        default: usage();
        }
    }
    if (O.nports == 0 || O.npids == 0 || O.members < 1 || O.rooms < 1 || O.sources < 1 ||
        O.pubs_per_room > O.members || O.payload < 1 || O.payload > 60000)
        usage();
    memset(pad, 'x', sizeof(pad));
    struct rlimit rl = {65536, 65536};
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    rbuf = malloc(READ_BUF);
    zbuf = malloc(ZBUF);
    if (epfd < 0 || !rbuf || !zbuf)
        die("setup");
    if (O.storm > 0)
        run_storm();
    else if (O.connect_mode)
        run_connect();
    else if (O.idle_mode)
        run_idle();
    else
        run_messages();
    return 0;
}
