/*
 * Issue 12, the library side of deployment, against the contract in
 * include/ssock/ssock.h and tls.h ("since 0.3"):
 *
 *  - PROXY protocol v1/v2 read inside the acceptor, on a plain server and
 *    a TLS server of every built backend, through ssock_server_accept()
 *    and through the non-blocking ssock_server_try_accept() (every PROXY
 *    case runs in both modes): the getters (original client, TCP peer,
 *    proxied flag, TLVs), bytes after the header kept, headers in 1-byte
 *    pieces while others are served, header and ClientHello in one
 *    segment, oversized/truncated/timed-out headers, untrusted sources,
 *    version mismatches, a malformed trusted list; exact stats and events.
 *  - Certificate rotation with ssock_server_set_tls(): the leaf the client
 *    receives, in-flight handshakes on the old config, errors, and a swap
 *    loop under load with zero failed handshakes.
 *  - Socket activation: ssock_server_open_fd() and ssock_listen_fds().
 *
 * Clients are raw sockets (headers, ClientHello bytes) and the in-test
 * OpenSSL client (tests/tls_client.c).
 */
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ssock/tls.h"

#if SSOCK_HAVE_TLS && defined(SSOCK_DEPLOY_TLS_CLIENT)
#define DP_TLS 1
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls_client.h"
#else
#define DP_TLS 0
#endif

#define CERT(f) SSOCK_CERTS_DIR "/" f
#define LONG_MS 10000
/* accept() timeout of the test servers: each blocking call is short, the
 * helpers loop up to their own limit. */
#define ACC_MS 200

/* ---- accept modes ------------------------------------------------------ */

enum { M_BLOCK = 0, M_TRY = 1 };
static int mode_block = M_BLOCK, mode_try = M_TRY;
#define MODE(state) (*(int *)*(state))

/* One accept in `mode`, for at most `ms`: the blocking accept in a loop
 * (each call waits the server's ACC_MS), or try_accept driven by poll on
 * the poll fd and the next timeout. SSOCK_ETIMEOUT when nothing came. */
static int acc_wait(ssock_server *srv, int mode, int ms, ssock_socket **out)
{
    int64_t deadline = th_now_ms() + ms;

    *out = NULL;
    for (;;) {
        int rc;
        if (mode == M_BLOCK) {
            rc = ssock_server_accept(srv, out);
            if (rc != SSOCK_ETIMEOUT)
                return rc;
            if (th_now_ms() >= deadline)
                return SSOCK_ETIMEOUT;
            continue;
        }
        rc = ssock_server_try_accept(srv, out);
        if (rc != SSOCK_EAGAIN)
            return rc;
        assert_null(*out);
        int left = (int)(deadline - th_now_ms());
        if (left <= 0)
            return SSOCK_ETIMEOUT;
        int nt = ssock_server_next_timeout(srv);
        int w = nt >= 0 && nt < left ? nt : left;
        struct pollfd p = {.fd = ssock_server_poll_fd(srv), .events = POLLIN};
        assert_true(p.fd >= 0);
        (void)poll(&p, 1, w > 50 ? 50 : w);
    }
}

/* Let the acceptor work for `ms` when nothing is expected to come out. */
static void acc_nothing(ssock_server *srv, int mode, int ms)
{
    ssock_socket *s = NULL;
    int rc = acc_wait(srv, mode, ms, &s);
    if (rc != SSOCK_ETIMEOUT)
        fail_msg("accept: %s, expected SSOCK_ETIMEOUT (nothing to hand out)",
                 ssock_err_name(rc));
    assert_null(s);
}

/* ---- events ------------------------------------------------------------ */

#define EV_MAX 64
typedef struct ev_rec {
    int type, status, peer_port;
    char detail[96], peer_host[SSOCK_HOST_MAX];
    char sock_peer[SSOCK_HOST_MAX]; /* ACCEPTED: ssock_socket_peer_host() */
    int sock_proxied;
} ev_rec;
typedef struct ev_log {
    pthread_mutex_t mu;
    int n;
    ev_rec v[EV_MAX];
} ev_log;

static void on_event(const ssock_event *ev, void *arg)
{
    ev_log *l = arg;
    pthread_mutex_lock(&l->mu);
    if (l->n < EV_MAX) {
        ev_rec *r = &l->v[l->n++];
        memset(r, 0, sizeof *r);
        r->type = ev->type;
        r->status = ev->status;
        r->peer_port = ev->peer_port;
        snprintf(r->detail, sizeof r->detail, "%s",
                 ev->detail ? ev->detail : "(null)");
        snprintf(r->peer_host, sizeof r->peer_host, "%s",
                 ev->peer_host ? ev->peer_host : "(null)");
        if (ev->sock != NULL) {
            const char *h = ssock_socket_peer_host(ev->sock);
            snprintf(r->sock_peer, sizeof r->sock_peer, "%s", h ? h : "(null)");
            r->sock_proxied = ssock_socket_proxied(ev->sock);
        }
    }
    pthread_mutex_unlock(&l->mu);
}

static ev_log *ev_new(void)
{
    ev_log *l = calloc(1, sizeof *l);
    assert_non_null(l);
    pthread_mutex_init(&l->mu, NULL);
    return l;
}

static void ev_free(ev_log *l)
{
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static int ev_count(ev_log *l, int type)
{
    int c = 0;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->n; i++)
        c += l->v[i].type == type;
    pthread_mutex_unlock(&l->mu);
    return c;
}

/* Exactly one PROXY_REFUSED event, with this detail, from this TCP peer:
 * 0, or 1 with the difference in `msg`. */
static int ev_check_refused(ev_log *l, const char *detail, int peer_port,
                            char *msg, size_t msglen)
{
    int found = 0, bad = 0;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->n; i++) {
        const ev_rec *r = &l->v[i];
        if (r->type != SSOCK_EVENT_PROXY_REFUSED)
            continue;
        found++;
        if (!bad &&
            (r->status != SSOCK_EPROXY || strcmp(r->detail, detail) != 0 ||
             strcmp(r->peer_host, "127.0.0.1") != 0 ||
             r->peer_port != peer_port)) {
            bad = 1;
            snprintf(msg, msglen,
                     "PROXY_REFUSED event: status %s detail \"%s\" peer %s "
                     "%d; expected SSOCK_EPROXY \"%s\" 127.0.0.1 %d",
                     ssock_err_name(r->status), r->detail, r->peer_host,
                     r->peer_port, detail, peer_port);
        }
    }
    pthread_mutex_unlock(&l->mu);
    if (!bad && found != 1) {
        bad = 1;
        snprintf(msg, msglen, "%d PROXY_REFUSED events, expected 1", found);
    }
    return bad;
}

static void ev_expect_refused(ev_log *l, const char *detail, int peer_port)
{
    char msg[400];
    if (ev_check_refused(l, detail, peer_port, msg, sizeof msg))
        fail_msg("%s", msg);
}

/* ---- stats ------------------------------------------------------------- */

typedef struct want_stats {
    unsigned long long accepted, handed_out, pending, ok, malformed, untrusted,
        timed_out;
} want_stats;

static void stats_expect(const ssock_server *srv, want_stats w)
{
    ssock_server_stats s;
    memset(&s, 0xA5, sizeof s);
    assert_int_equal(ssock_server_stats(srv, &s), 0);
    if (s.accepted != w.accepted || s.handed_out != w.handed_out ||
        s.pending != w.pending || s.proxy_ok != w.ok ||
        s.proxy_malformed != w.malformed || s.proxy_untrusted != w.untrusted ||
        s.proxy_timed_out != w.timed_out)
        fail_msg("stats accepted %llu handed_out %llu pending %llu ok %llu "
                 "malformed %llu untrusted %llu timed_out %llu; expected "
                 "%llu %llu %llu %llu %llu %llu %llu",
                 s.accepted, s.handed_out, s.pending, s.proxy_ok,
                 s.proxy_malformed, s.proxy_untrusted, s.proxy_timed_out,
                 w.accepted, w.handed_out, w.pending, w.ok, w.malformed,
                 w.untrusted, w.timed_out);
}

/* ---- headers ----------------------------------------------------------- */

static size_t v1(char *buf, size_t cap, const char *rest)
{
    int n = snprintf(buf, cap, "PROXY %s\r\n", rest);
    assert_true(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

typedef struct tlv {
    uint8_t type;
    const void *val;
    size_t len;
} tlv;

#define V2_LOCAL 0
#define V2_PROXY 1

/* A v2 header: command, family byte (0x11 INET/TCP, 0x21 INET6/TCP, 0x00
 * UNSPEC), addresses (text of the family; ignored for 0x00), TLVs, and
 * `extra` more length (for oversized ones; those bytes are not written:
 * the header's length field says more than follows). */
static size_t v2(uint8_t *b, size_t cap, int cmd, uint8_t fam, const char *src,
                 const char *dst, int sport, int dport, const tlv *t, size_t nt)
{
    static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    size_t at = 16;

    assert_true(cap >= 16 + 36);
    memcpy(b, sig, 12);
    b[12] = (uint8_t)(0x20 | cmd);
    b[13] = fam;
    if (fam == 0x11 || fam == 0x21) {
        int af = fam == 0x11 ? AF_INET : AF_INET6;
        size_t al = fam == 0x11 ? 4 : 16;
        assert_int_equal(inet_pton(af, src, b + at), 1);
        assert_int_equal(inet_pton(af, dst, b + at + al), 1);
        at += 2 * al;
        b[at++] = (uint8_t)(sport >> 8);
        b[at++] = (uint8_t)sport;
        b[at++] = (uint8_t)(dport >> 8);
        b[at++] = (uint8_t)dport;
    }
    if (fam == 0x31 || fam == 0x32) { /* UNIX: two 108-byte paths */
        assert_true(cap >= 16 + 216);
        memset(b + at, 0, 216);
        memcpy(b + at, src, strlen(src));
        memcpy(b + at + 108, dst, strlen(dst));
        at += 216;
    }
    for (size_t i = 0; i < nt; i++) {
        assert_true(at + 3 + t[i].len <= cap);
        b[at++] = t[i].type;
        b[at++] = (uint8_t)(t[i].len >> 8);
        b[at++] = (uint8_t)t[i].len;
        if (t[i].len > 0)
            memcpy(b + at, t[i].val, t[i].len);
        at += t[i].len;
    }
    b[14] = (uint8_t)((at - 16) >> 8);
    b[15] = (uint8_t)(at - 16);
    return at;
}

/* ---- clients ----------------------------------------------------------- */

static int client(int port)
{
    int fd = th_connect(AF_INET, port, LONG_MS);
    if (fd < 0)
        fail_msg("connect: %s", strerror(-fd));
    return fd;
}

static void send_all(int fd, const void *b, size_t n)
{
    int rc = th_send_all(fd, b, n);
    if (rc != 0)
        fail_msg("send: %s", strerror(-rc));
}

/* The server closed this connection without sending one byte: recv sees
 * end of stream or a reset (the unread header makes close send an RST),
 * within `ms`. */
static void expect_closed_silently(int fd, int ms)
{
    char b[64];
    ssize_t n = th_recv_some(fd, b, sizeof b, ms);
    if (n > 0)
        fail_msg("the server sent %zd bytes to a refused connection", n);
    if (n != 0 && n != -ECONNRESET)
        fail_msg("refused connection: recv %s, expected end of stream or "
                 "a reset",
                 n == -ETIMEDOUT ? "timed out (still open)"
                                 : strerror((int)-n));
}

/* Still open, nothing received (checked without waiting). */
static void expect_open(int fd)
{
    char b[8];
    ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
    if (!(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
        fail_msg("connection not open and silent: recv %zd (%s)", n,
                 n < 0 ? strerror(errno) : "data or end of stream");
}

/* ---- servers ----------------------------------------------------------- */

typedef struct srv_cfg {
    int proxy;            /* SSOCK_PROXY_* */
    const char *trusted;  /* NULL: default */
    int proxy_timeout_ms; /* 0: default */
    int accept_ms;        /* 0: ACC_MS */
    int dual;             /* 1: bind "::" dual-stack, else 127.0.0.1 */
    const ssock_tls_config *tls;
    ev_log *ev;
} srv_cfg;

static ssock_server *srv_open(const srv_cfg *c)
{
    ssock_server_options o;
    ssock_server *srv = NULL;

    ssock_server_options_init(&o);
    o.addr = c->dual ? NULL : "127.0.0.1";
    o.accept_timeout_ms = c->accept_ms > 0 ? c->accept_ms : ACC_MS;
    o.read_timeout_ms = LONG_MS;
    o.proxy_protocol = c->proxy;
    o.proxy_trusted = c->trusted;
    o.proxy_timeout_ms = c->proxy_timeout_ms;
    o.tls = c->tls;
    if (c->ev != NULL) {
        o.on_event = on_event;
        o.on_event_arg = c->ev;
    }
    int rc = ssock_server_open(&srv, &o);
    if (rc != 0)
        fail_msg("ssock_server_open: %s", ssock_err_name(rc));
    return srv;
}

/* Read exactly `want` from the socket (the bytes after the header). */
static void sock_expect(ssock_socket *s, const char *want)
{
    char buf[256];
    size_t got = 0, len = strlen(want);
    assert_true(len < sizeof buf);
    while (got < len) {
        size_t n = 0;
        int rc = ssock_socket_read(s, buf + got, len - got, &n);
        if (rc != 0)
            fail_msg("read after the header: %s", ssock_err_name(rc));
        got += n;
    }
    assert_memory_equal(buf, want, len);
}

static void expect_peer(ssock_socket *s, const char *host, int port,
                        int proxied, int tcp_port)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;

    assert_string_equal(ssock_socket_peer_host(s), host);
    assert_int_equal(ssock_socket_peer_port(s), port);
    assert_int_equal(ssock_socket_proxied(s), proxied);
    assert_string_equal(ssock_socket_tcp_peer_host(s), "127.0.0.1");
    assert_int_equal(ssock_socket_tcp_peer_port(s), tcp_port);
    /* Binary forms agree with the text. */
    assert_int_equal(ssock_socket_peer_addr(s, &ss, &len), 0);
    char txt[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        assert_int_equal(len, sizeof *a);
        inet_ntop(AF_INET, &a->sin_addr, txt, sizeof txt);
        assert_int_equal(ntohs(a->sin_port), port);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        assert_int_equal(ss.ss_family, AF_INET6);
        assert_int_equal(len, sizeof *a);
        inet_ntop(AF_INET6, &a->sin6_addr, txt, sizeof txt);
        assert_int_equal(ntohs(a->sin6_port), port);
    }
    assert_string_equal(txt, host);
    len = 0;
    assert_int_equal(ssock_socket_tcp_peer_addr(s, &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), tcp_port);
}

static void expect_tlv(ssock_socket *s, int type, const void *v, size_t n)
{
    size_t len = 12345;
    const void *p = ssock_socket_proxy_tlv(s, type, &len);
    if (v == NULL) {
        assert_null(p);
        assert_int_equal(len, 0);
        return;
    }
    assert_non_null(p);
    assert_int_equal(len, n);
    assert_memory_equal(p, v, n);
}

static void expect_no_tlvs(ssock_socket *s)
{
    expect_tlv(s, SSOCK_PROXY_TLV_ALPN, NULL, 0);
    expect_tlv(s, SSOCK_PROXY_TLV_AUTHORITY, NULL, 0);
    expect_tlv(s, SSOCK_PROXY_TLV_UNIQUE_ID, NULL, 0);
}

/* ======================================================================== */
/* PROXY on a plain server                                                  */
/* ======================================================================== */

/* Send `hdr` + "hello" on a new connection to a server in `proxy` mode,
 * accept it, check what the getters say. */
typedef struct good_case {
    const char *name;
    int proxy;
    const void *hdr;
    size_t hlen;
    const char *host; /* NULL: the TCP peer */
    int port;
} good_case;

static void run_good(int mode, const good_case *g, ssock_socket **keep)
{
    ev_log *ev = ev_new();
    srv_cfg c = {.proxy = g->proxy, .ev = ev};
    ssock_server *srv = srv_open(&c);
    int port = ssock_server_local_port(srv);
    int fd = client(port);
    int cport = th_local_port(fd);
    ssock_socket *s = NULL;

    print_message("[ case     ] %s\n", g->name);
    send_all(fd, g->hdr, g->hlen);
    send_all(fd, "hello", 5);
    int rc = acc_wait(srv, mode, LONG_MS, &s);
    if (rc != 0)
        fail_msg("%s: accept %s", g->name, ssock_err_name(rc));
    if (g->host != NULL)
        expect_peer(s, g->host, g->port, 1, cport);
    else
        expect_peer(s, "127.0.0.1", cport, 0, cport);
    sock_expect(s, "hello");
    stats_expect(srv, (want_stats){.accepted = 1, .handed_out = 1, .ok = 1});
    /* The ACCEPTED event already shows the header's client. */
    assert_int_equal(ev_count(ev, SSOCK_EVENT_ACCEPTED), 1);
    assert_string_equal(ev->v[0].sock_peer, g->host ? g->host : "127.0.0.1");
    assert_int_equal(ev->v[0].sock_proxied, g->host != NULL);
    assert_int_equal(ev_count(ev, SSOCK_EVENT_PROXY_REFUSED), 0);
    if (keep != NULL) {
        *keep = s;
        s = NULL;
    }
    ssock_socket_free(s);
    ssock_server_free(srv);
    close(fd);
    ev_free(ev);
}

static void test_v1_good(void **state)
{
    char h1[128], h2[128], h3[128], h4[128], h5[128];
    size_t n1 = v1(h1, sizeof h1, "TCP4 192.0.2.1 198.51.100.2 56324 443");
    size_t n2 =
        v1(h2, sizeof h2, "TCP6 2001:db8::1 2001:db8:ffff::2 65535 8443");
    size_t n3 = v1(h3, sizeof h3, "UNKNOWN");
    size_t n4 = v1(h4, sizeof h4, "UNKNOWN ffff:f...f:ffff 0 0 whatever");
    size_t n5 = v1(h5, sizeof h5, "TCP4 255.255.255.255 0.0.0.0 0 0");
    const good_case cases[] = {
        {"v1 TCP4", SSOCK_PROXY_V1, h1, n1, "192.0.2.1", 56324},
        {"v1 TCP4 on ANY", SSOCK_PROXY_ANY, h1, n1, "192.0.2.1", 56324},
        {"v1 TCP6", SSOCK_PROXY_V1, h2, n2, "2001:db8::1", 65535},
        {"v1 UNKNOWN", SSOCK_PROXY_V1, h3, n3, NULL, 0},
        {"v1 UNKNOWN with text", SSOCK_PROXY_ANY, h4, n4, NULL, 0},
        {"v1 TCP4 port 0", SSOCK_PROXY_V1, h5, n5, "255.255.255.255", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ssock_socket *s = NULL;
        run_good(MODE(state), &cases[i], &s);
        expect_no_tlvs(s); /* v1 has none */
        ssock_socket_free(s);
    }
}

static void test_v1_longest(void **state)
{
    /* Exactly 107 bytes with CRLF: the longest legal line is accepted. */
    char h[128] = "PROXY UNKNOWN ";
    size_t n = strlen(h);
    memset(h + n, 'x', 105 - n);
    memcpy(h + 105, "\r\n", 2);
    const good_case g = {"v1 107 bytes", SSOCK_PROXY_V1, h, 107, NULL, 0};
    run_good(MODE(state), &g, NULL);
}

static void test_v2_good(void **state)
{
    static const char alpn[] = "h2", auth[] = "www.example.com";
    uint8_t uid[128], crc[4] = {1, 2, 3, 4}, junk[40];
    memset(uid, 0xEE, sizeof uid);
    memset(junk, 0x5A, sizeof junk);
    const tlv all[] = {
        {0x04, NULL, 0},  /* NOOP, empty */
        {0x01, alpn, 2},  /* ALPN */
        {0x03, crc, 4},   /* CRC32C: not verified */
        {0x02, auth, 15}, /* AUTHORITY */
        {0xE0, junk, 40}, /* custom: skipped */
        {0x05, uid, 128}, /* UNIQUE_ID, the longest allowed */
        {0x20, junk, 5},  /* SSL: skipped */
    };
    uint8_t h4[512], h6[512], hl[512], hu[512];
    size_t n4 = v2(h4, sizeof h4, V2_PROXY, 0x11, "203.0.113.9", "198.51.100.1",
                   40000, 443, all, 7);
    size_t n6 = v2(h6, sizeof h6, V2_PROXY, 0x21, "2001:db8::abcd",
                   "2001:db8::1", 1, 65535, all + 1, 1);
    size_t nl = v2(hl, sizeof hl, V2_LOCAL, 0x11, "203.0.113.9", "198.51.100.1",
                   40000, 443, all, 7);
    size_t nu = v2(hu, sizeof hu, V2_PROXY, 0x00, NULL, NULL, 0, 0, NULL, 0);

    ssock_socket *s = NULL;
    good_case g = {"v2 PROXY INET + TLVs", SSOCK_PROXY_V2, h4, n4,
                   "203.0.113.9",          40000};
    run_good(MODE(state), &g, &s);
    expect_tlv(s, SSOCK_PROXY_TLV_ALPN, alpn, 2);
    expect_tlv(s, SSOCK_PROXY_TLV_AUTHORITY, auth, 15);
    expect_tlv(s, SSOCK_PROXY_TLV_UNIQUE_ID, uid, 128);
    expect_tlv(s, 0x03, NULL, 0); /* not a kept type */
    expect_tlv(s, 0xE0, NULL, 0);
    ssock_socket_free(s);

    g = (good_case){
        "v2 PROXY INET6", SSOCK_PROXY_ANY, h6, n6, "2001:db8::abcd", 1};
    run_good(MODE(state), &g, &s);
    expect_tlv(s, SSOCK_PROXY_TLV_ALPN, alpn, 2);
    expect_tlv(s, SSOCK_PROXY_TLV_AUTHORITY, NULL, 0);
    expect_tlv(s, SSOCK_PROXY_TLV_UNIQUE_ID, NULL, 0);
    ssock_socket_free(s);

    /* LOCAL: the TCP peer; the address block and TLVs are discarded. */
    g = (good_case){"v2 LOCAL", SSOCK_PROXY_V2, hl, nl, NULL, 0};
    run_good(MODE(state), &g, &s);
    expect_no_tlvs(s);
    ssock_socket_free(s);

    g = (good_case){"v2 PROXY UNSPEC", SSOCK_PROXY_V2, hu, nu, NULL, 0};
    run_good(MODE(state), &g, &s);
    expect_no_tlvs(s);
    ssock_socket_free(s);

    /* UNIX stream: no TCP client to name, the TCP peer stays. */
    uint8_t hx[512];
    size_t nx = v2(hx, sizeof hx, V2_PROXY, 0x31, "/run/client.sock",
                   "/run/haproxy.sock", 0, 0, NULL, 0);
    assert_int_equal(nx, 16 + 216);
    g = (good_case){"v2 PROXY UNIX", SSOCK_PROXY_ANY, hx, nx, NULL, 0};
    run_good(MODE(state), &g, NULL);

    /* NULL arguments of the TLV getter. */
    size_t len = 7;
    assert_null(ssock_socket_proxy_tlv(NULL, SSOCK_PROXY_TLV_ALPN, &len));
    assert_int_equal(len, 0);
}

static void test_v2_longest(void **state)
{
    /* 16 + 4080 = 4096: the longest accepted v2 header. */
    static uint8_t h[4200], pad[4100];
    const tlv t = {0x04, pad, 4080 - 12 - 3};
    size_t n = v2(h, sizeof h, V2_PROXY, 0x11, "192.0.2.200", "192.0.2.1", 1234,
                  80, &t, 1);
    assert_int_equal(n, 4096);
    const good_case g = {
        "v2 4096 bytes", SSOCK_PROXY_V2, h, n, "192.0.2.200", 1234};
    run_good(MODE(state), &g, NULL);
}

/* Without the option nothing changes: the TCP peer, not proxied, no TLV,
 * and a header is just data. */
static void test_proxy_off(void **state)
{
    srv_cfg c = {.proxy = SSOCK_PROXY_OFF};
    ssock_server *srv = srv_open(&c);
    int fd = client(ssock_server_local_port(srv));
    int cport = th_local_port(fd);
    char h[64];
    size_t n = v1(h, sizeof h, "TCP4 1.2.3.4 5.6.7.8 1 2");
    ssock_socket *s = NULL;

    send_all(fd, h, n);
    assert_int_equal(acc_wait(srv, MODE(state), LONG_MS, &s), 0);
    expect_peer(s, "127.0.0.1", cport, 0, cport);
    expect_no_tlvs(s);
    sock_expect(s, h);
    stats_expect(srv, (want_stats){.accepted = 1, .handed_out = 1});
    assert_int_equal(ssock_socket_proxied(NULL), SSOCK_EINVAL);
    assert_null(ssock_socket_tcp_peer_host(NULL));
    assert_int_equal(ssock_socket_tcp_peer_port(NULL), SSOCK_EINVAL);
    ssock_socket_free(s);
    ssock_server_free(srv);
    close(fd);
}

/* A refused connection: `bytes` sent (then the write side shut when
 * `then_close`), the acceptor runs, the client sees a silent close, the
 * counters and the event say why. */
typedef struct bad_case {
    const char *name;
    int proxy;
    const char *trusted;
    const void *bytes;
    size_t len;
    int then_close;
    const char *detail; /* event detail */
    int untrusted;      /* counted as untrusted (else malformed) */
} bad_case;

/* Returns 1 (after cleaning up, with the reason printed) when only the
 * event differed, so that every case still runs; fails at once for the
 * rest. */
static int run_bad(int mode, const bad_case *b)
{
    char msg[400];
    ev_log *ev = ev_new();
    srv_cfg c = {.proxy = b->proxy, .trusted = b->trusted, .ev = ev};
    ssock_server *srv = srv_open(&c);
    int fd = client(ssock_server_local_port(srv));
    int cport = th_local_port(fd);

    print_message("[ case     ] %s\n", b->name);
    if (b->len > 0)
        send_all(fd, b->bytes, b->len);
    if (b->then_close)
        assert_int_equal(shutdown(fd, SHUT_WR), 0);
    /* Rejected as soon as the bytes prove it: within one short accept,
     * long before any header deadline. */
    acc_nothing(srv, mode, ACC_MS + TH_SLACK_MS);
    expect_closed_silently(fd, 0);
    stats_expect(srv, (want_stats){.accepted = 1,
                                   .malformed = b->untrusted ? 0 : 1,
                                   .untrusted = b->untrusted ? 1 : 0});
    int ev_bad = ev_check_refused(ev, b->detail, cport, msg, sizeof msg);
    assert_int_equal(ev_count(ev, SSOCK_EVENT_ACCEPTED), 0);
    assert_int_equal(ssock_server_next_timeout(srv), -1); /* nothing pending */

    /* The server is fine afterwards: a good client gets through. */
    if (!b->untrusted) {
        int fd2 = client(ssock_server_local_port(srv));
        char h[64];
        size_t n = b->proxy == SSOCK_PROXY_V2
                       ? v2((uint8_t *)h, sizeof h, V2_LOCAL, 0, NULL, NULL, 0,
                            0, NULL, 0)
                       : v1(h, sizeof h, "UNKNOWN");
        ssock_socket *s = NULL;
        send_all(fd2, h, n);
        assert_int_equal(acc_wait(srv, mode, LONG_MS, &s), 0);
        ssock_socket_free(s);
        close(fd2);
    }
    ssock_server_free(srv);
    close(fd);
    ev_free(ev);
    if (ev_bad)
        print_error("%s: %s\n", b->name, msg);
    return ev_bad;
}

static void test_malformed(void **state)
{
    char big[200], h1[128];
    static uint8_t v2big[64], v2cut[64], v2bad[64];
    size_t n1 = v1(h1, sizeof h1, "TCP4 1.2.3.4 5.6.7.8 1 2");

    /* > 107 bytes of a v1 line that never ends (UNKNOWN allows any text:
     * only the length limit can reject it). */
    memcpy(big, "PROXY UNKNOWN ", 14);
    memset(big + 14, 'x', sizeof big - 14);
    /* v2 announcing 4081 bytes: rejected on its 16-byte preamble. */
    size_t nb = v2(v2big, sizeof v2big, V2_PROXY, 0x11, "1.2.3.4", "5.6.7.8", 1,
                   2, NULL, 0);
    v2big[14] = (4081 >> 8) & 0xFF;
    v2big[15] = 4081 & 0xFF;
    (void)nb;
    size_t nc =
        v2(v2cut, sizeof v2cut, V2_PROXY, 0x21, "::1", "::2", 1, 2, NULL, 0);
    memcpy(v2bad, v2cut, nc);
    v2bad[12] = 0x11; /* version 1 in a v2 header */

    const bad_case cases[] = {
        {"v1 over 107 bytes", SSOCK_PROXY_V1, NULL, big, sizeof big, 0,
         "malformed header", 0},
        {"v1 108 bytes on ANY", SSOCK_PROXY_ANY, NULL, big, 108, 0,
         "malformed header", 0},
        {"v2 length 4081", SSOCK_PROXY_V2, NULL, v2big, 16, 0,
         "malformed header", 0},
        {"v1 to a v2-only server", SSOCK_PROXY_V2, NULL, h1, n1, 0,
         "malformed header", 0},
        {"v2 to a v1-only server", SSOCK_PROXY_V1, NULL, v2cut, nc, 0,
         "malformed header", 0},
        {"v2 bad version", SSOCK_PROXY_ANY, NULL, v2bad, nc, 0,
         "malformed header", 0},
        {"no header: HTTP", SSOCK_PROXY_ANY, NULL, "GET / HTTP/1.1\r\n", 16, 0,
         "malformed header", 0},
        {"no header: TLS record", SSOCK_PROXY_ANY, NULL, "\x16\x03\x01", 3, 0,
         "malformed header", 0},
        {"v1 bad address", SSOCK_PROXY_V1, NULL,
         "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", 34, 0, "malformed header", 0},
        {"v1 LF only", SSOCK_PROXY_V1, NULL, "PROXY UNKNOWN\n", 14, 0,
         "malformed header", 0},
        {"v1 truncated, then closed", SSOCK_PROXY_V1, NULL, h1, n1 - 3, 1,
         "malformed header", 0},
        {"v2 truncated, then closed", SSOCK_PROXY_V2, NULL, v2cut, nc - 1, 1,
         "malformed header", 0},
        {"v2 preamble cut, then closed", SSOCK_PROXY_ANY, NULL, v2cut, 7, 1,
         "malformed header", 0},
        {"nothing, then closed", SSOCK_PROXY_ANY, NULL, "", 0, 1,
         "malformed header", 0},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        bad += run_bad(MODE(state), &cases[i]);
    if (bad)
        fail_msg("%d case(s) with the wrong PROXY_REFUSED event (above)", bad);
}

static void test_untrusted(void **state)
{
    char h[64];
    size_t n = v1(h, sizeof h, "TCP4 1.2.3.4 5.6.7.8 1 2");
    const bad_case cases[] = {
        {"untrusted, valid header", SSOCK_PROXY_ANY, "10.0.0.0/8", h, n, 0,
         "untrusted source", 1},
        /* Closed unread: no need to wait for any byte. */
        {"untrusted, silent", SSOCK_PROXY_V1, "10.0.0.0/8, ::1/128", "", 0, 0,
         "untrusted source", 1},
        /* The empty list trusts nobody. */
        {"empty list", SSOCK_PROXY_V2, "", h, n, 0, "untrusted source", 1},
        /* 127.0.0.2/31 is 127.0.0.2-3: 127.0.0.1 is just outside. */
        {"next door", SSOCK_PROXY_V1, "127.0.0.2/31,::ffff:127.0.0.0/128", h, n,
         0, "untrusted source", 1},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        bad += run_bad(MODE(state), &cases[i]);
    if (bad)
        fail_msg("%d case(s) with the wrong PROXY_REFUSED event (above)", bad);

    /* And trusted through each spelling that covers 127.0.0.1. */
    static const char *const ok[] = {"127.0.0.1", "127.0.0.0/31",
                                     "::ffff:127.0.0.1", "0.0.0.0/0",
                                     " 10.0.0.0/8 , 127.0.0.1/32 "};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        srv_cfg c = {.proxy = SSOCK_PROXY_V1, .trusted = ok[i]};
        ssock_server *srv = srv_open(&c);
        int fd = client(ssock_server_local_port(srv));
        ssock_socket *s = NULL;
        send_all(fd, h, n);
        int rc = acc_wait(srv, MODE(state), LONG_MS, &s);
        if (rc != 0)
            fail_msg("trusted \"%s\": accept %s", ok[i], ssock_err_name(rc));
        assert_string_equal(ssock_socket_peer_host(s), "1.2.3.4");
        ssock_socket_free(s);
        ssock_server_free(srv);
        close(fd);
    }
}

/* The trust check on a dual-stack listener: an IPv4 client arrives as
 * ::ffff:127.0.0.1 and must match the IPv4 entries (and not ::1/128); an
 * IPv6 client ::1 the IPv6 ones. */
static void dual_one(int mode, int family, const char *trusted, int ok)
{
    ev_log *ev = ev_new();
    srv_cfg c = {
        .proxy = SSOCK_PROXY_V1, .trusted = trusted, .dual = 1, .ev = ev};
    ssock_server *srv = srv_open(&c);
    int fd = th_connect(family, ssock_server_local_port(srv), LONG_MS);
    char h[64];
    size_t n = v1(h, sizeof h, "TCP4 198.51.100.7 198.51.100.1 7 80");
    ssock_socket *s = NULL;

    assert_true(fd >= 0);
    print_message("[ case     ] %s client, trusted \"%s\"\n",
                  family == AF_INET ? "IPv4" : "IPv6", trusted);
    send_all(fd, h, n);
    if (ok) {
        int rc = acc_wait(srv, mode, LONG_MS, &s);
        if (rc != 0)
            fail_msg("accept: %s", ssock_err_name(rc));
        assert_string_equal(ssock_socket_peer_host(s), "198.51.100.7");
        assert_string_equal(ssock_socket_tcp_peer_host(s),
                            family == AF_INET ? "127.0.0.1" : "::1");
        stats_expect(srv,
                     (want_stats){.accepted = 1, .handed_out = 1, .ok = 1});
        ssock_socket_free(s);
    } else {
        acc_nothing(srv, mode, ACC_MS + TH_SLACK_MS);
        expect_closed_silently(fd, 0);
        stats_expect(srv, (want_stats){.accepted = 1, .untrusted = 1});
        assert_int_equal(ev_count(ev, SSOCK_EVENT_PROXY_REFUSED), 1);
    }
    ssock_server_free(srv);
    close(fd);
    ev_free(ev);
}

static void test_trust_dual_stack(void **state)
{
    TH_REQUIRE_IPV6();
    int m = MODE(state);
    dual_one(m, AF_INET, SSOCK_PROXY_DEFAULT_TRUSTED, 1);
    dual_one(m, AF_INET6, SSOCK_PROXY_DEFAULT_TRUSTED, 1);
    dual_one(m, AF_INET, "::1/128", 0);
    dual_one(m, AF_INET, "127.0.0.0/8", 1);
    dual_one(m, AF_INET, "::ffff:127.0.0.0/104", 1);
    dual_one(m, AF_INET6, "127.0.0.0/8", 0);
    dual_one(m, AF_INET6, "::/1", 1);
    dual_one(m, AF_INET6, "0.0.0.0/0", 0);
}

static void test_bad_trusted_list(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "banana",     "10.0.0.0/33", "10.0.0.1/8",   "10.0.0.0/8,",
        "fe80::1%lo", ",",           "127.0.0.1 ::1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ssock_server_options o;
        ssock_server *srv = (ssock_server *)&o; /* must become NULL */
        ssock_server_options_init(&o);
        o.addr = "127.0.0.1";
        o.proxy_protocol = SSOCK_PROXY_ANY;
        o.proxy_trusted = bad[i];
        int rc = ssock_server_open(&srv, &o);
        if (rc != SSOCK_EBADADDR)
            fail_msg("proxy_trusted \"%s\": %s, expected SSOCK_EBADADDR",
                     bad[i], ssock_err_name(rc));
        assert_null(srv);
    }
}

/* A plain server's header deadline: proxy_timeout_ms. */
static void test_header_timeout(void **state)
{
    const int T = 300 * (th_slow_mode() == 1 ? 3 : 1);
    ev_log *ev = ev_new();
    srv_cfg c = {.proxy = SSOCK_PROXY_ANY, .proxy_timeout_ms = T, .ev = ev};
    ssock_server *srv = srv_open(&c);
    int fd = client(ssock_server_local_port(srv));
    int64_t t0 = th_now_ms();
    int cport = th_local_port(fd);

    send_all(fd, "PROXY TCP4 ", 11);
    /* Before the deadline: still pending, still open, not counted. */
    acc_nothing(srv, MODE(state), T / 3);
    if (th_now_ms() - t0 < T - 1) {
        expect_open(fd);
        int nt = ssock_server_next_timeout(srv);
        assert_true(nt >= 0 && nt <= T);
        stats_expect(srv, (want_stats){.accepted = 1, .pending = 1});
    }
    /* Past it. */
    acc_nothing(srv, MODE(state), T + TH_SLACK_MS);
    expect_closed_silently(fd, 0);
    stats_expect(srv, (want_stats){.accepted = 1, .timed_out = 1});
    ev_expect_refused(ev, "header timed out", cport);
    assert_int_equal(ssock_server_next_timeout(srv), -1);
    ssock_server_free(srv);
    close(fd);
    ev_free(ev);
}

/* The lower bound: the connection is not dropped before its deadline
 * (best of TH_TRIES: the client's clock starts before the server's). */
static void test_header_timeout_not_early(void **state)
{
    const int T = 400;
    int64_t best = 0;
    for (int i = 0; i < TH_TRIES; i++) {
        /* Short blocking accepts, so the loop below looks often. */
        srv_cfg c = {
            .proxy = SSOCK_PROXY_V1, .proxy_timeout_ms = T, .accept_ms = 10};
        ssock_server *srv = srv_open(&c);
        int fd = client(ssock_server_local_port(srv));
        int64_t t0 = th_now_ms();
        char b[4];
        ssock_socket *s = NULL;
        send_all(fd, "PROXY", 5);
        /* Accept runs in the background of this thread's wait below. */
        assert_int_equal(acc_wait(srv, MODE(state), 1, &s), SSOCK_ETIMEOUT);
        int64_t closed = -1;
        while (th_now_ms() - t0 < T + TH_SLACK_MS + 1000) {
            (void)acc_wait(srv, MODE(state), 20, &s);
            assert_null(s);
            ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno == ECONNRESET)) {
                closed = th_now_ms() - t0;
                break;
            }
            assert_true(n < 0 && errno == EAGAIN);
        }
        if (closed < 0)
            fail_msg("header never timed out");
        assert_true(closed >= T - 1);
        if (i == 0 || closed < best)
            best = closed;
        ssock_server_free(srv);
        close(fd);
    }
    print_message("[ measure  ] header timeout %d ms: closed after %lld ms\n",
                  T, (long long)best);
    assert_true(best <= T + TH_SLACK_MS + 20 /* acc_wait step */);
}

/* A header in 1-byte pieces never delays another client. */
typedef struct trickle {
    int fd;
    const char *bytes;
    size_t len;
    int pause_ms;
    atomic_int done;
} trickle;

static void *trickle_fn(void *p)
{
    trickle *t = p;
    for (size_t i = 0; i < t->len; i++) {
        if (th_send_all(t->fd, t->bytes + i, 1) != 0)
            break;
        th_sleep_ms(t->pause_ms);
    }
    atomic_store(&t->done, 1);
    return NULL;
}

static void test_slow_header(void **state)
{
    srv_cfg c = {.proxy = SSOCK_PROXY_ANY};
    ssock_server *srv = srv_open(&c);
    int port = ssock_server_local_port(srv);
    char hs[128], hf[128];
    size_t ns = v1(hs, sizeof hs, "TCP4 10.1.1.1 10.2.2.2 1111 80");
    size_t nf = v1(hf, sizeof hf, "TCP4 10.3.3.3 10.2.2.2 2222 80");
    memcpy(hs + ns, "slow", 4);
    trickle t = {.fd = client(port),
                 .bytes = hs,
                 .len = ns + 4,
                 .pause_ms = th_slow_mode() == 1 ? 60 : 25};
    th_thread th;
    ssock_socket *s = NULL;

    /* The slow one is taken first, then trickles. */
    assert_int_equal(th_thread_start(&th, trickle_fn, &t), 0);
    th_sleep_ms(2 * t.pause_ms);
    for (int k = 0; k < 3; k++) {
        int fd = client(port);
        send_all(fd, hf, nf);
        send_all(fd, "fast", 4);
        int rc = acc_wait(srv, MODE(state), LONG_MS, &s);
        if (rc != 0)
            fail_msg("fast client %d: accept %s", k, ssock_err_name(rc));
        if (atomic_load(&t.done))
            fail_msg("fast client %d came out only after the slow header "
                     "was complete",
                     k);
        assert_string_equal(ssock_socket_peer_host(s), "10.3.3.3");
        assert_int_equal(ssock_socket_peer_port(s), 2222);
        sock_expect(s, "fast");
        ssock_socket_free(s);
        close(fd);
    }
    assert_int_equal(acc_wait(srv, MODE(state), LONG_MS, &s), 0);
    assert_string_equal(ssock_socket_peer_host(s), "10.1.1.1");
    assert_int_equal(ssock_socket_peer_port(s), 1111);
    sock_expect(s, "slow");
    assert_int_equal(th_thread_join(&th, TH_STUCK_MS), 1);
    stats_expect(srv, (want_stats){.accepted = 4, .handed_out = 4, .ok = 4});
    ssock_socket_free(s);
    ssock_server_free(srv);
    close(t.fd);
}

/* Stats: several outcomes on one server, counted exactly; and the
 * argument checks. */
static void test_stats_mix(void **state)
{
    ev_log *ev = ev_new();
    srv_cfg c = {.proxy = SSOCK_PROXY_V1, .proxy_timeout_ms = 250, .ev = ev};
    ssock_server *srv = srv_open(&c);
    int port = ssock_server_local_port(srv);
    char h[64];
    size_t n = v1(h, sizeof h, "TCP4 1.2.3.4 5.6.7.8 1 2");
    int fds[5];
    ssock_socket *s[2] = {NULL, NULL};

    for (int i = 0; i < 5; i++)
        fds[i] = client(port);
    send_all(fds[0], h, n);                       /* ok */
    send_all(fds[1], h, n);                       /* ok */
    send_all(fds[2], "\r\n\r\n\0\r\nQUIT\n", 12); /* v2: malformed here */
    send_all(fds[3], "PROXY", 5);                 /* times out */
    (void)shutdown(fds[4], SHUT_WR);              /* malformed: EOF */
    for (int i = 0; i < 2; i++)
        assert_int_equal(acc_wait(srv, MODE(state), LONG_MS, &s[i]), 0);
    acc_nothing(srv, MODE(state), 250 + TH_SLACK_MS + 100);
    for (int i = 2; i < 5; i++)
        expect_closed_silently(fds[i], 0);
    stats_expect(srv, (want_stats){.accepted = 5,
                                   .handed_out = 2,
                                   .ok = 2,
                                   .malformed = 2,
                                   .timed_out = 1});
    assert_int_equal(ev_count(ev, SSOCK_EVENT_PROXY_REFUSED), 3);
    assert_int_equal(ev_count(ev, SSOCK_EVENT_ACCEPTED), 2);
    /* Still answers after close. */
    assert_int_equal(ssock_server_close(srv), 0);
    stats_expect(srv, (want_stats){.accepted = 5,
                                   .handed_out = 2,
                                   .ok = 2,
                                   .malformed = 2,
                                   .timed_out = 1});
    ssock_server_stats st;
    assert_int_equal(ssock_server_stats(NULL, &st), SSOCK_EINVAL);
    assert_int_equal(ssock_server_stats(srv, NULL), SSOCK_EINVAL);
    assert_int_equal(ssock_server_stats_sized(srv, &st, 0), SSOCK_EINVAL);
    /* An older caller's smaller struct: only its part is written. */
    unsigned long long two[3] = {7, 7, 0xDEAD};
    assert_int_equal(ssock_server_stats_sized(srv, (ssock_server_stats *)two,
                                              2 * sizeof(unsigned long long)),
                     0);
    assert_int_equal(two[0], 5);
    assert_int_equal(two[1], 2);
    assert_int_equal(two[2], 0xDEAD);
    for (int i = 0; i < 2; i++)
        ssock_socket_free(s[i]);
    for (int i = 0; i < 5; i++)
        close(fds[i]);
    ssock_server_free(srv);
    ev_free(ev);
}

/* Close while headers are pending: they are dropped, accept says closed. */
static void test_close_with_pending(void **state)
{
    srv_cfg c = {.proxy = SSOCK_PROXY_ANY};
    ssock_server *srv = srv_open(&c);
    int fd = client(ssock_server_local_port(srv));
    ssock_socket *s = NULL;

    send_all(fd, "PROXY TCP4 1.2", 14);
    acc_nothing(srv, MODE(state), 100);
    stats_expect(srv, (want_stats){.accepted = 1, .pending = 1});
    assert_int_equal(ssock_server_close(srv), 0);
    expect_closed_silently(fd, TH_STUCK_MS);
    int rc = MODE(state) == M_BLOCK ? ssock_server_accept(srv, &s)
                                    : ssock_server_try_accept(srv, &s);
    assert_int_equal(rc, SSOCK_ECLOSED);
    assert_null(s);
    ssock_server_free(srv);
    close(fd);
}

/* ======================================================================== */
/* PROXY on TLS servers                                                     */
/* ======================================================================== */

#if DP_TLS
static const int all_backends[] = {SSOCK_TLS_BACKEND_MBEDTLS,
                                   SSOCK_TLS_BACKEND_OPENSSL};

static ssock_tls_config *tls_cfg(int backend, const char *cert, const char *key,
                                 int hs_ms)
{
    ssock_tls_options t;
    ssock_tls_config *cfg = NULL;
    char err[SSOCK_TLS_ERRBUF_SIZE];

    ssock_tls_options_init(&t);
    t.backend = backend;
    t.cert_file = cert;
    t.key_file = key;
    if (hs_ms > 0)
        t.handshake_timeout_ms = hs_ms;
    int rc = ssock_tls_config_new(&cfg, &t, err, sizeof err);
    if (rc != 0)
        fail_msg("ssock_tls_config_new: %s: %s", ssock_err_name(rc), err);
    return cfg;
}

#define ECDSA CERT("server-ecdsa.pem"), CERT("server-ecdsa.key")
#define RSA CERT("server-rsa.pem"), CERT("server-rsa.key")

static void each_backend(void (*fn)(int backend, int mode), int mode)
{
    int ran = 0;
    for (size_t i = 0; i < sizeof all_backends / sizeof all_backends[0]; i++) {
        int be = all_backends[i];
        if (!ssock_tls_backend_available(be)) {
            if (th_skip_check("backend %s not built: its runs are skipped",
                              ssock_tls_backend_name(be)))
                fail_msg("SSOCK_GATE=1: every TLS backend must be built");
            continue;
        }
        print_message("[ backend  ] %s\n", ssock_tls_backend_name(be));
        fn(be, mode);
        ran++;
    }
    if (ran == 0)
        TH_SKIP("no TLS backend built");
}

/* Accept on a thread (while this one drives the client). */
typedef struct acc {
    th_call call;
    ssock_server *srv;
    int mode, ms;
    ssock_socket *sock;
} acc;

static int acc_fn(void *p)
{
    acc *a = p;
    return acc_wait(a->srv, a->mode, a->ms, &a->sock);
}

static void acc_start(acc *a, ssock_server *srv, int mode, int ms)
{
    memset(a, 0, sizeof *a);
    a->srv = srv;
    a->mode = mode;
    a->ms = ms;
    assert_int_equal(th_call_start(&a->call, acc_fn, a), 0);
}

static int acc_join(acc *a)
{
    if (!th_call_wait(&a->call, LONG_MS + TH_STUCK_MS))
        fail_msg("accept thread stuck");
    return a->call.rc;
}

/* DER of a PEM certificate file / of the leaf the client received. */
static size_t file_der(const char *path, uint8_t *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    int n = i2d_X509(x, NULL);
    assert_true(n > 0 && (size_t)n <= cap);
    uint8_t *p = out;
    i2d_X509(x, &p);
    X509_free(x);
    return (size_t)n;
}

static uint8_t der_ecdsa[4096], der_rsa[4096];
static size_t len_ecdsa, len_rsa;

static void load_ders(void)
{
    if (len_ecdsa == 0) {
        len_ecdsa =
            file_der(CERT("server-ecdsa.pem"), der_ecdsa, sizeof der_ecdsa);
        len_rsa = file_der(CERT("server-rsa.pem"), der_rsa, sizeof der_rsa);
    }
}

/* 0: the ECDSA leaf, 1: the RSA leaf, -1: something else or none. */
static int leaf_id(tc_conn *c)
{
    X509 *x = SSL_get1_peer_certificate((SSL *)c->ssl);
    uint8_t buf[4096], *p = buf;
    int id = -1;
    if (x == NULL)
        return -1;
    int n = i2d_X509(x, NULL);
    if (n > 0 && (size_t)n <= sizeof buf) {
        i2d_X509(x, &p);
        if ((size_t)n == len_ecdsa && memcmp(buf, der_ecdsa, len_ecdsa) == 0)
            id = 0;
        else if ((size_t)n == len_rsa && memcmp(buf, der_rsa, len_rsa) == 0)
            id = 1;
    }
    X509_free(x);
    return id;
}

/* Header, then the ClientHello in the same TCP segment (TCP_CORK holds the
 * header until the ClientHello joins it), then the handshake; the socket
 * has the header's client, the TLVs, and echoes through TLS. */
static void tls_proxy_one(int backend, int mode, int pieces)
{
    ssock_tls_config *cfg = tls_cfg(backend, ECDSA, 0);
    srv_cfg c = {.proxy = SSOCK_PROXY_ANY, .tls = cfg};
    ssock_server *srv = srv_open(&c);
    ssock_tls_config_free(cfg);
    tc_opts o;
    tc_conn cc;
    acc a;
    uint8_t h[256];
    static const char auth[] = "api.example.net";
    const tlv t[] = {{0x02, auth, 15}};
    size_t n = v2(h, sizeof h, V2_PROXY, 0x21, "2001:db8::7", "2001:db8::1",
                  5555, 443, t, 1);
    int one = 1, zero = 0;

    tc_opts_init(&o);
    assert_int_equal(tc_open(&cc, ssock_server_local_port(srv), &o, LONG_MS),
                     TC_OK);
    int cport = th_local_port(cc.fd);
    acc_start(&a, srv, mode, LONG_MS);
    if (pieces) {
        for (size_t i = 0; i < n; i++) {
            send_all(cc.fd, h + i, 1);
            th_sleep_ms(5);
        }
    } else {
        assert_int_equal(
            setsockopt(cc.fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one), 0);
        send_all(cc.fd, h, n);
        assert_int_equal(tc_step(&cc), TC_WANT); /* the ClientHello */
        assert_int_equal(
            setsockopt(cc.fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof zero), 0);
    }
    int rc = tc_handshake(&cc, LONG_MS);
    if (rc != TC_OK)
        fail_msg("client handshake: %d %s", rc, cc.err);
    rc = acc_join(&a);
    if (rc != 0)
        fail_msg("accept: %s", ssock_err_name(rc));
    expect_peer(a.sock, "2001:db8::7", 5555, 1, cport);
    expect_tlv(a.sock, SSOCK_PROXY_TLV_AUTHORITY, auth, 15);
    assert_int_equal(tc_write_all(&cc, "ping", 4, LONG_MS), TC_OK);
    sock_expect(a.sock, "ping");
    stats_expect(srv, (want_stats){.accepted = 1, .handed_out = 1, .ok = 1});
    ssock_tls_stats ts;
    assert_int_equal(ssock_server_tls_stats(srv, &ts), 0);
    assert_int_equal(ts.handshakes_ok, 1);
    assert_int_equal(ts.handshakes_failed, 0);
    ssock_socket_free(a.sock);
    tc_close(&cc);
    ssock_server_free(srv);
}

static void tls_same_write(int backend, int mode)
{
    tls_proxy_one(backend, mode, 0);

    /* Literally one send(): header and a ClientHello. The server must
     * answer the ClientHello (a handshake record comes back), so it did
     * not swallow bytes past the header. */
    ssock_tls_config *cfg = tls_cfg(backend, ECDSA, 0);
    srv_cfg c = {.proxy = SSOCK_PROXY_V2, .tls = cfg};
    ssock_server *srv = srv_open(&c);
    ssock_tls_config_free(cfg);
    uint8_t buf[4096], ch[2048];
    size_t chn = 0;
    tc_opts o;
    tc_opts_init(&o);
    assert_int_equal(tc_client_hello(&o, ch, sizeof ch, &chn), TC_OK);
    size_t n = v2(buf, sizeof buf, V2_PROXY, 0x11, "192.0.2.5", "192.0.2.1",
                  500, 443, NULL, 0);
    assert_true(n + chn <= sizeof buf);
    memcpy(buf + n, ch, chn);
    int fd = client(ssock_server_local_port(srv));
    assert_int_equal(send(fd, buf, n + chn, MSG_NOSIGNAL), (ssize_t)(n + chn));
    acc_nothing(srv, mode, ACC_MS);
    uint8_t rec[5];
    ssize_t got = th_recv_some(fd, rec, sizeof rec, LONG_MS);
    if (got <= 0)
        fail_msg("no ServerHello after header + ClientHello in one write: %s",
                 got == 0 ? "closed" : strerror((int)-got));
    assert_int_equal(rec[0], 0x16); /* a handshake record */
    stats_expect(srv, (want_stats){.accepted = 1, .pending = 1, .ok = 1});
    ssock_server_free(srv);
    close(fd);
}

static void tls_pieces(int backend, int mode)
{
    tls_proxy_one(backend, mode, 1);
}

static void test_tls_same_write(void **state)
{
    each_backend(tls_same_write, MODE(state));
}

static void test_tls_pieces(void **state)
{
    each_backend(tls_pieces, MODE(state));
}

/* Refusals on a TLS server: untrusted (nothing sent back, not even an
 * alert), malformed, and the header deadline = the handshake deadline. */
static void tls_refusals(int backend, int mode)
{
    const int T = 300 * (th_slow_mode() == 1 ? 3 : 1);
    uint8_t ch[2048], buf[4096];
    size_t chn = 0;
    tc_opts o;
    char h[64];
    size_t hn = v1(h, sizeof h, "TCP4 1.2.3.4 5.6.7.8 1 2");

    tc_opts_init(&o);
    assert_int_equal(tc_client_hello(&o, ch, sizeof ch, &chn), TC_OK);
    memcpy(buf, h, hn);
    memcpy(buf + hn, ch, chn);

    /* Untrusted. */
    {
        ev_log *ev = ev_new();
        ssock_tls_config *cfg = tls_cfg(backend, ECDSA, 0);
        srv_cfg c = {.proxy = SSOCK_PROXY_V1,
                     .trusted = "10.0.0.0/8",
                     .tls = cfg,
                     .ev = ev};
        ssock_server *srv = srv_open(&c);
        ssock_tls_config_free(cfg);
        int fd = client(ssock_server_local_port(srv));
        int cport = th_local_port(fd);
        send_all(fd, buf, hn + chn);
        acc_nothing(srv, mode, ACC_MS + TH_SLACK_MS);
        expect_closed_silently(fd, 0);
        stats_expect(srv, (want_stats){.accepted = 1, .untrusted = 1});
        ev_expect_refused(ev, "untrusted source", cport);
        assert_int_equal(ev_count(ev, SSOCK_EVENT_HANDSHAKE_FAILED), 0);
        ssock_tls_stats ts;
        assert_int_equal(ssock_server_tls_stats(srv, &ts), 0);
        assert_int_equal(ts.handshakes_ok, 0);
        ssock_server_free(srv);
        close(fd);
        ev_free(ev);
    }
    /* Malformed: a ClientHello without a header. */
    {
        ev_log *ev = ev_new();
        ssock_tls_config *cfg = tls_cfg(backend, ECDSA, 0);
        srv_cfg c = {.proxy = SSOCK_PROXY_ANY, .tls = cfg, .ev = ev};
        ssock_server *srv = srv_open(&c);
        ssock_tls_config_free(cfg);
        int fd = client(ssock_server_local_port(srv));
        int cport = th_local_port(fd);
        send_all(fd, ch, chn);
        acc_nothing(srv, mode, ACC_MS + TH_SLACK_MS);
        expect_closed_silently(fd, 0);
        stats_expect(srv, (want_stats){.accepted = 1, .malformed = 1});
        ev_expect_refused(ev, "malformed header", cport);
        ssock_server_free(srv);
        close(fd);
        ev_free(ev);
    }
    /* Header timeout: the handshake deadline covers the header; a
     * proxy_timeout_ms far longer is ignored on TLS servers. */
    {
        ev_log *ev = ev_new();
        ssock_tls_config *cfg = tls_cfg(backend, ECDSA, T);
        srv_cfg c = {.proxy = SSOCK_PROXY_V1,
                     .tls = cfg,
                     .ev = ev,
                     .proxy_timeout_ms = 60000};
        ssock_server *srv = srv_open(&c);
        ssock_tls_config_free(cfg);
        int fd = client(ssock_server_local_port(srv));
        int cport = th_local_port(fd);
        send_all(fd, h, hn - 2); /* no CRLF */
        acc_nothing(srv, mode, T + TH_SLACK_MS);
        expect_closed_silently(fd, 0);
        stats_expect(srv, (want_stats){.accepted = 1, .timed_out = 1});
        ev_expect_refused(ev, "header timed out", cport);
        ssock_server_free(srv);
        close(fd);
        ev_free(ev);
    }
    /* A good header, then the handshake fails: a TLS failure, not a PROXY
     * one. */
    {
        ev_log *ev = ev_new();
        ssock_tls_config *cfg = tls_cfg(backend, ECDSA, 0);
        srv_cfg c = {.proxy = SSOCK_PROXY_V1, .tls = cfg, .ev = ev};
        ssock_server *srv = srv_open(&c);
        ssock_tls_config_free(cfg);
        int fd = client(ssock_server_local_port(srv));
        send_all(fd, h, hn);
        send_all(fd, "GET / HTTP/1.1\r\n\r\n", 18);
        acc_nothing(srv, mode, ACC_MS + TH_SLACK_MS);
        stats_expect(srv, (want_stats){.accepted = 1, .ok = 1});
        ssock_tls_stats ts;
        assert_int_equal(ssock_server_tls_stats(srv, &ts), 0);
        assert_int_equal(ts.handshakes_failed, 1);
        assert_int_equal(ev_count(ev, SSOCK_EVENT_PROXY_REFUSED), 0);
        assert_int_equal(ev_count(ev, SSOCK_EVENT_HANDSHAKE_FAILED), 1);
        ssock_server_free(srv);
        close(fd);
        ev_free(ev);
    }
}

static void test_tls_refusals(void **state)
{
    each_backend(tls_refusals, MODE(state));
}

/* A TLS client trickling its header does not delay a good TLS client. */
static void tls_slow(int backend, int mode)
{
    ssock_tls_config *cfg = tls_cfg(backend, ECDSA, 0);
    srv_cfg c = {.proxy = SSOCK_PROXY_V1, .tls = cfg};
    ssock_server *srv = srv_open(&c);
    ssock_tls_config_free(cfg);
    int port = ssock_server_local_port(srv);
    char hs[64], hf[64];
    size_t ns = v1(hs, sizeof hs, "TCP4 10.9.9.9 10.2.2.2 9 80");
    size_t nf = v1(hf, sizeof hf, "TCP4 10.8.8.8 10.2.2.2 8 80");
    trickle t = {.fd = client(port),
                 .bytes = hs,
                 .len = ns,
                 .pause_ms = th_slow_mode() == 1 ? 80 : 30};
    th_thread th;
    tc_opts o;
    tc_conn cc;
    acc a;

    assert_int_equal(th_thread_start(&th, trickle_fn, &t), 0);
    th_sleep_ms(2 * t.pause_ms);
    tc_opts_init(&o);
    assert_int_equal(tc_open(&cc, port, &o, LONG_MS), TC_OK);
    acc_start(&a, srv, mode, LONG_MS);
    send_all(cc.fd, hf, nf);
    assert_int_equal(tc_handshake(&cc, LONG_MS), TC_OK);
    assert_int_equal(acc_join(&a), 0);
    if (atomic_load(&t.done))
        fail_msg("the good TLS client came out only after the slow header");
    assert_string_equal(ssock_socket_peer_host(a.sock), "10.8.8.8");
    ssock_socket_free(a.sock);
    tc_close(&cc);
    assert_int_equal(th_thread_join(&th, TH_STUCK_MS), 1);
    ssock_server_free(srv);
    close(t.fd);
}

/*
 * Behind a balancer every connection has the balancer's TCP address. Once
 * a PROXY header has named the client, the per-source handshake limit
 * (max_handshakes_per_source) must count that client, or one slow client
 * behind the balancer evicts everyone else's handshakes, which is what
 * the limit exists to prevent ("a slow or silent sender never delays
 * others"). Three clients with distinct header addresses, limit 2, each
 * stalled after its header: none is dropped.
 */
static void tls_source_behind_proxy(int backend, int mode)
{
    ssock_tls_options t;
    ssock_tls_config *cfg = NULL;
    ssock_tls_options_init(&t);
    t.backend = backend;
    t.cert_file = CERT("server-ecdsa.pem");
    t.key_file = CERT("server-ecdsa.key");
    t.max_handshakes_per_source = 2;
    assert_int_equal(ssock_tls_config_new(&cfg, &t, NULL, 0), 0);
    srv_cfg c = {.proxy = SSOCK_PROXY_V1, .tls = cfg};
    ssock_server *srv = srv_open(&c);
    ssock_tls_config_free(cfg);
    int fds[3];
    for (int i = 0; i < 3; i++) {
        char h[64], rest[64];
        snprintf(rest, sizeof rest, "TCP4 203.0.113.%d 192.0.2.1 %d 443", i + 1,
                 1000 + i);
        size_t n = v1(h, sizeof h, rest);
        fds[i] = client(ssock_server_local_port(srv));
        send_all(fds[i], h, n);
        acc_nothing(srv, mode, 50); /* header read; TLS stage, silent */
    }
    ssock_tls_stats ts;
    assert_int_equal(ssock_server_tls_stats(srv, &ts), 0);
    stats_expect(srv,
                 (want_stats){.accepted = 3, .pending = ts.in_flight, .ok = 3});
    int bad = ts.handshakes_source_limited != 0 || ts.in_flight != 3;
    for (int i = 0; i < 3 && !bad; i++)
        expect_open(fds[i]);
    /* And the header's client is the source the limit counts: three more
     * from one client (limit 2) drop that client's own oldest, nobody
     * else's. */
    int same[3];
    for (int i = 0; i < 3 && !bad; i++) {
        char h[64];
        size_t n = v1(h, sizeof h, "TCP4 198.51.100.9 192.0.2.1 4000 443");
        same[i] = client(ssock_server_local_port(srv));
        send_all(same[i], h, n);
        acc_nothing(srv, mode, 50);
    }
    if (!bad) {
        assert_int_equal(ssock_server_tls_stats(srv, &ts), 0);
        assert_int_equal(ts.handshakes_source_limited, 1);
        assert_int_equal(ts.in_flight, 5);
        expect_closed_silently(same[0], 0);
        expect_open(same[1]);
        expect_open(same[2]);
        for (int i = 0; i < 3; i++)
            expect_open(fds[i]);
        for (int i = 0; i < 3; i++)
            close(same[i]);
    }
    ssock_server_free(srv);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    if (bad)
        fail_msg("distinct clients behind one balancer were limited as one "
                 "source: source_limited %llu, in flight %llu (expected 0, "
                 "3)",
                 (unsigned long long)ts.handshakes_source_limited,
                 (unsigned long long)ts.in_flight);
}

static void test_tls_source_behind_proxy(void **state)
{
    each_backend(tls_source_behind_proxy, MODE(state));
}

static void test_tls_slow_header(void **state)
{
    each_backend(tls_slow, MODE(state));
}

/* ======================================================================== */
/* Certificate rotation                                                     */
/* ======================================================================== */

/* One full handshake against `srv`, accepted on a thread; the leaf id. */
static int handshake_leaf(ssock_server *srv, int mode)
{
    tc_opts o;
    tc_conn cc;
    acc a;
    tc_opts_init(&o);
    assert_int_equal(tc_open(&cc, ssock_server_local_port(srv), &o, LONG_MS),
                     TC_OK);
    acc_start(&a, srv, mode, LONG_MS);
    int rc = tc_handshake(&cc, LONG_MS);
    if (rc != TC_OK)
        fail_msg("handshake: %d %s", rc, cc.err);
    assert_int_equal(acc_join(&a), 0);
    int id = leaf_id(&cc);
    ssock_socket_free(a.sock);
    tc_close(&cc);
    return id;
}

static void rotate_basic(int backend, int mode)
{
    load_ders();
    ssock_tls_config *e = tls_cfg(backend, ECDSA, 0);
    ssock_tls_config *r = tls_cfg(backend, RSA, 0);
    srv_cfg c = {.tls = e};
    ssock_server *srv = srv_open(&c);
    ssock_tls_config_free(e);

    assert_int_equal(handshake_leaf(srv, mode), 0);
    assert_int_equal(ssock_server_set_tls(srv, r), 0);
    ssock_tls_config_free(r); /* the server holds its own reference */
    assert_int_equal(handshake_leaf(srv, mode), 1);
    assert_int_equal(handshake_leaf(srv, mode), 1);
    /* And back, with a config built right now. */
    e = tls_cfg(backend, ECDSA, 0);
    assert_int_equal(ssock_server_set_tls(srv, e), 0);
    assert_int_equal(ssock_server_set_tls(srv, e), 0); /* same one again */
    ssock_tls_config_free(e);
    assert_int_equal(handshake_leaf(srv, mode), 0);
    ssock_server_free(srv);
}

static void test_rotate_basic(void **state)
{
    each_backend(rotate_basic, MODE(state));
}

/* Handshakes in flight during the swap finish on the old config: one
 * taken from the listener but silent, one whose ClientHello the server
 * already answered. Sockets handed out earlier keep working. */
static void rotate_in_flight(int backend, int mode)
{
    (void)mode; /* needs the step-by-step accept */
    load_ders();
    ssock_tls_config *e = tls_cfg(backend, ECDSA, 0);
    ssock_tls_config *r = tls_cfg(backend, RSA, 0);
    srv_cfg c = {.tls = e};
    ssock_server *srv = srv_open(&c);
    int port = ssock_server_local_port(srv);
    tc_opts o;
    tc_conn c1, c2, c0;
    ssock_socket *s = NULL, *s0 = NULL;
    acc a;

    ssock_tls_config_free(e);
    tc_opts_init(&o);
    /* c0: done before the swap, used after it. */
    assert_int_equal(tc_open(&c0, port, &o, LONG_MS), TC_OK);
    acc_start(&a, srv, M_TRY, LONG_MS);
    assert_int_equal(tc_handshake(&c0, LONG_MS), TC_OK);
    assert_int_equal(acc_join(&a), 0);
    s0 = a.sock;

    assert_int_equal(tc_open(&c1, port, &o, LONG_MS), TC_OK);
    assert_int_equal(tc_open(&c2, port, &o, LONG_MS), TC_OK);
    assert_int_equal(tc_step(&c2), TC_WANT); /* ClientHello sent */
    /* Let the server take both and answer c2's ClientHello. */
    int64_t dl = th_now_ms() + LONG_MS;
    for (;;) {
        ssock_server_stats st;
        struct pollfd p = {.fd = c2.fd, .events = POLLIN};
        assert_int_equal(ssock_server_try_accept(srv, &s), SSOCK_EAGAIN);
        assert_int_equal(ssock_server_stats(srv, &st), 0);
        if (st.accepted == 3 && poll(&p, 1, 0) == 1)
            break;
        if (th_now_ms() > dl)
            fail_msg("the server did not take both connections");
        p.fd = ssock_server_poll_fd(srv);
        (void)poll(&p, 1, 20);
    }
    assert_int_equal(ssock_server_set_tls(srv, r), 0);
    ssock_tls_config_free(r);

    for (int i = 0; i < 2; i++) {
        tc_conn *cc = i == 0 ? &c1 : &c2;
        acc_start(&a, srv, M_TRY, LONG_MS);
        int rc = tc_handshake(cc, LONG_MS);
        if (rc != TC_OK)
            fail_msg("in-flight handshake %d: %d %s", i, rc, cc->err);
        assert_int_equal(acc_join(&a), 0);
        if (leaf_id(cc) != 0)
            fail_msg("in-flight handshake %d got leaf %d, expected the old "
                     "(ECDSA) one",
                     i, leaf_id(cc));
        ssock_socket_free(a.sock);
    }
    /* The socket from before the swap still talks. */
    assert_int_equal(tc_write_all(&c0, "old", 3, LONG_MS), TC_OK);
    sock_expect(s0, "old");
    size_t w = 0;
    assert_int_equal(ssock_socket_write(s0, "ok", 2, &w), 0);
    char buf[2];
    assert_int_equal(tc_read_exact(&c0, buf, 2, LONG_MS), TC_OK);
    /* A new one gets the new certificate. */
    assert_int_equal(handshake_leaf(srv, M_TRY), 1);
    ssock_tls_stats ts;
    assert_int_equal(ssock_server_tls_stats(srv, &ts), 0);
    assert_int_equal(ts.handshakes_ok, 4);
    assert_int_equal(ts.handshakes_failed, 0);
    ssock_socket_free(s0);
    tc_close(&c0);
    tc_close(&c1);
    tc_close(&c2);
    ssock_server_free(srv);
}

static void test_rotate_in_flight(void **state)
{
    each_backend(rotate_in_flight, MODE(state));
}

/*
 * "Connections accepted after the call handshake with the new
 * configuration", also when the call lands in the middle of an accept
 * step. The event callback runs inside the step, after the step began and
 * before it takes new connections from the listener: there the test swaps
 * the config and connects client B. B (connected after the swap returned)
 * and C (queued before it, but taken from the listener after it) must both
 * get the new certificate.
 */
typedef struct mid {
    ssock_server *srv;
    ssock_tls_config *next;
    int backend, swapped, port;
    tc_conn b;
    int b_rc;
} mid;

static void mid_event(const ssock_event *ev, void *arg)
{
    mid *m = arg;
    if (ev->type != SSOCK_EVENT_PROXY_REFUSED || m->swapped)
        return;
    m->swapped = 1;
    /* No cmocka assertions here: record, check after. */
    if (ssock_server_set_tls(m->srv, m->next) != 0) {
        m->b_rc = -100;
        return;
    }
    tc_opts o;
    tc_opts_init(&o);
    m->b_rc = tc_open(&m->b, m->port, &o, LONG_MS);
}

static void rotate_mid_step(int backend, int mode)
{
    load_ders();
    ssock_tls_config *e = tls_cfg(backend, ECDSA, 0);
    mid m;
    memset(&m, 0, sizeof m);
    m.b.fd = -1;
    m.backend = backend;
    m.next = tls_cfg(backend, RSA, 0);
    ssock_server_options o;
    ssock_server_options_init(&o);
    o.addr = "127.0.0.1";
    o.accept_timeout_ms = ACC_MS;
    o.read_timeout_ms = LONG_MS;
    o.proxy_protocol = SSOCK_PROXY_ANY;
    o.tls = e;
    o.on_event = mid_event;
    o.on_event_arg = &m;
    assert_int_equal(ssock_server_open(&m.srv, &o), 0);
    ssock_tls_config_free(e);
    m.port = ssock_server_local_port(m.srv);

    /* A: taken by the server, header pending. */
    int a = client(m.port);
    acc_nothing(m.srv, mode, 50);
    stats_expect(m.srv, (want_stats){.accepted = 1, .pending = 1});
    /* A's bad header and C's connection wait for the same step. */
    send_all(a, "GET / HTTP/1.0\r\n", 16);
    tc_opts co;
    tc_conn c;
    tc_opts_init(&co);
    assert_int_equal(tc_open(&c, m.port, &co, LONG_MS), TC_OK);
    acc_nothing(m.srv, mode, 100);
    assert_int_equal(m.swapped, 1);
    assert_int_equal(m.b_rc, TC_OK);
    expect_closed_silently(a, 0);
    ssock_tls_config_free(m.next);

    char hb[64], hc[64];
    size_t nb = v1(hb, sizeof hb, "TCP4 192.0.2.66 192.0.2.1 66 443");
    size_t nc = v1(hc, sizeof hc, "TCP4 192.0.2.77 192.0.2.1 77 443");
    int leaf[2];
    for (int i = 0; i < 2; i++) {
        tc_conn *cc = i == 0 ? &m.b : &c;
        acc ac;
        send_all(cc->fd, i == 0 ? hb : hc, i == 0 ? nb : nc);
        acc_start(&ac, m.srv, mode, LONG_MS);
        int rc = tc_handshake(cc, LONG_MS);
        if (rc != TC_OK)
            fail_msg("handshake %c: %d %s", i == 0 ? 'B' : 'C', rc, cc->err);
        assert_int_equal(acc_join(&ac), 0);
        leaf[i] = leaf_id(cc);
        ssock_socket_free(ac.sock);
    }
    tc_close(&m.b);
    tc_close(&c);
    ssock_server_free(m.srv);
    close(a);
    if (leaf[0] != 1 || leaf[1] != 1)
        fail_msg("accepted after ssock_server_set_tls() returned, but "
                 "handshaked with the old certificate: B (connected after "
                 "the swap) leaf %s, C (queued before, taken after) leaf %s",
                 leaf[0] == 1 ? "new" : "OLD", leaf[1] == 1 ? "new" : "OLD");
}

static void test_rotate_mid_step(void **state)
{
    each_backend(rotate_mid_step, MODE(state));
}

static void rotate_errors(int backend, int mode)
{
    (void)mode;
    ssock_tls_config *e = tls_cfg(backend, ECDSA, 0);
    srv_cfg plain = {0};
    ssock_server *p = srv_open(&plain);
    srv_cfg c = {.tls = e};
    ssock_server *t = srv_open(&c);

    assert_int_equal(ssock_server_set_tls(NULL, e), SSOCK_EINVAL);
    assert_int_equal(ssock_server_set_tls(t, NULL), SSOCK_EINVAL);
    assert_int_equal(ssock_server_set_tls(NULL, NULL), SSOCK_EINVAL);
    assert_int_equal(ssock_server_set_tls(p, e), SSOCK_ENOTTLS);
    assert_int_equal(ssock_server_drain(t), 0);
    assert_int_equal(ssock_server_set_tls(t, e), SSOCK_ECLOSED);
    ssock_server_free(t);
    t = srv_open(&c);
    assert_int_equal(ssock_server_close(t), 0);
    assert_int_equal(ssock_server_set_tls(t, e), SSOCK_ECLOSED);
    assert_int_equal(ssock_server_close(p), 0);
    assert_int_equal(ssock_server_set_tls(p, e), SSOCK_ENOTTLS);
    ssock_server_free(t);
    ssock_server_free(p);
    ssock_tls_config_free(e);
}

static void test_rotate_errors(void **state)
{
    each_backend(rotate_errors, MODE(state));
}

/* Under load: a client thread runs handshakes back to back while this
 * thread swaps the config several times a second; an acceptor thread
 * hands out and frees. Zero failed handshakes, and every handshake that
 * began after swap k returned and ended before swap k+1 began got swap
 * k's certificate. */
#define HS_MAX 20000
typedef struct hs_rec {
    int64_t start_us, end_us;
    int leaf;
} hs_rec;

typedef struct load {
    ssock_server *srv;
    int port, mode;
    atomic_int stop;     /* client */
    atomic_int stop_acc; /* acceptor, once the client has stopped */
    int failures, n;
    char first_err[400];
    hs_rec *rec;
    int handed;
} load;

static void *load_client(void *p)
{
    load *l = p;
    tc_opts o;
    tc_opts_init(&o);
    while (!atomic_load(&l->stop) && l->n < HS_MAX) {
        tc_conn cc;
        char b[1];
        hs_rec *r = &l->rec[l->n];
        r->start_us = th_now_us();
        int rc = tc_open(&cc, l->port, &o, LONG_MS);
        if (rc == TC_OK)
            rc = tc_handshake(&cc, LONG_MS);
        /* The server reads one byte and closes: the connection was
         * handed out, not just finished on our side. */
        if (rc == TC_OK)
            rc = tc_write_all(&cc, "x", 1, LONG_MS);
        if (rc == TC_OK) {
            size_t n = 0;
            int e = tc_read_some(&cc, b, 1, &n, LONG_MS);
            if (e != TC_CLOSE_NOTIFY && e != TC_EOF)
                rc = e == TC_OK ? TC_ERR : e;
        }
        r->end_us = th_now_us();
        if (rc != TC_OK) {
            if (l->failures++ == 0)
                snprintf(l->first_err, sizeof l->first_err, "%d: %s", rc,
                         cc.err);
        } else {
            r->leaf = leaf_id(&cc);
            l->n++;
        }
        tc_close(&cc);
    }
    return NULL;
}

static void *load_acceptor(void *p)
{
    load *l = p;
    while (!atomic_load(&l->stop_acc)) {
        ssock_socket *s = NULL;
        int rc = acc_wait(l->srv, l->mode, 100, &s);
        if (rc == SSOCK_ETIMEOUT)
            continue;
        if (rc != 0)
            break;
        char b[1];
        size_t n = 0;
        if (ssock_socket_read(s, b, 1, &n) == 0)
            l->handed++;
        ssock_socket_free(s);
    }
    return NULL;
}

static void rotate_load(int backend, int mode)
{
    /* Under Valgrind a handshake takes a few hundred ms: fewer, slower
     * swaps, so that handshakes still fit between two of them. */
    const int secs = th_slow_mode() == 1 ? 3 : 1;
    const int swaps_per_s = th_slow_mode() == 1 ? 2 : 16;
    const int nswaps = secs * swaps_per_s;
    load_ders();
    ssock_tls_config *e = tls_cfg(backend, ECDSA, 0);
    srv_cfg c = {.tls = e};
    load l;
    memset(&l, 0, sizeof l);
    l.srv = srv_open(&c);
    ssock_tls_config_free(e);
    l.port = ssock_server_local_port(l.srv);
    l.mode = mode;
    l.rec = calloc(HS_MAX, sizeof *l.rec);
    assert_non_null(l.rec);
    int64_t *sw_begin = calloc((size_t)nswaps + 1, sizeof(int64_t));
    int64_t *sw_end = calloc((size_t)nswaps + 1, sizeof(int64_t));
    assert_non_null(sw_begin);
    assert_non_null(sw_end);
    th_thread tc, ta;

    assert_int_equal(th_thread_start(&ta, load_acceptor, &l), 0);
    assert_int_equal(th_thread_start(&tc, load_client, &l), 0);
    /* Swap k (1..nswaps) installs leaf k % 2 (1: RSA); before it, 0. */
    for (int k = 1; k <= nswaps; k++) {
        th_sleep_ms(1000 / swaps_per_s);
        ssock_tls_config *n =
            k % 2 ? tls_cfg(backend, RSA, 0) : tls_cfg(backend, ECDSA, 0);
        sw_begin[k] = th_now_us();
        int rc = ssock_server_set_tls(l.srv, n);
        sw_end[k] = th_now_us();
        ssock_tls_config_free(n);
        if (rc != 0)
            fail_msg("swap %d: %s", k, ssock_err_name(rc));
    }
    th_sleep_ms(1000 / swaps_per_s);
    atomic_store(&l.stop, 1);
    if (!th_thread_join(&tc, TH_STUCK_MS + LONG_MS))
        fail_msg("load client stuck");
    atomic_store(&l.stop_acc, 1);
    if (!th_thread_join(&ta, TH_STUCK_MS))
        fail_msg("load acceptor stuck");

    int checked = 0, seen[2] = {0, 0};
    for (int i = 0; i < l.n; i++) {
        const hs_rec *r = &l.rec[i];
        if (r->leaf < 0)
            fail_msg("handshake %d: unknown leaf", i);
        seen[r->leaf]++;
        int k = 0; /* the last swap that ended before this began */
        while (k < nswaps && sw_end[k + 1] <= r->start_us)
            k++;
        if (k < nswaps && sw_begin[k + 1] < r->end_us)
            continue; /* a swap overlapped: either leaf is right */
        checked++;
        if (r->leaf != k % 2)
            fail_msg("handshake %d (after swap %d) got leaf %d, expected %d", i,
                     k, r->leaf, k % 2);
    }
    ssock_tls_stats ts;
    assert_int_equal(ssock_server_tls_stats(l.srv, &ts), 0);
    print_message("[ measure  ] %d swaps, %d handshakes (%d ECDSA, %d RSA, "
                  "%d checked against their swap), %d failed\n",
                  nswaps, l.n, seen[0], seen[1], checked, l.failures);
    if (l.failures != 0)
        fail_msg("%d client handshakes failed; first: %s", l.failures,
                 l.first_err);
    assert_int_equal(ts.handshakes_failed, 0);
    assert_int_equal(ts.handshakes_timed_out, 0);
    assert_int_equal(ts.handshakes_dropped, 0);
    assert_int_equal(ts.handshakes_ok, (uint64_t)l.n);
    assert_int_equal(l.handed, l.n);
    assert_true(checked > 0);
    /* After the last swap (nswaps is even: ECDSA). */
    assert_int_equal(handshake_leaf(l.srv, mode), nswaps % 2);
    ssock_server_free(l.srv);
    free(l.rec);
    free(sw_begin);
    free(sw_end);
}

static void test_rotate_load(void **state)
{
    each_backend(rotate_load, MODE(state));
}

#else /* !DP_TLS */

static void test_no_tls(void **state)
{
    (void)state;
#if !SSOCK_HAVE_TLS
    TH_SKIP("no TLS backend built: the TLS PROXY and rotation cases are "
            "skipped");
#else
    TH_SKIP("no libssl for the in-test TLS client: the TLS PROXY and "
            "rotation cases are skipped");
#endif
}
#endif

/* ======================================================================== */
/* Socket activation                                                        */
/* ======================================================================== */

static int listener(int family, int type, int do_listen)
{
    int fd = socket(family, type, 0);
    assert_true(fd >= 0);
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET) {
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    } else if (family == AF_INET6) {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6};
        a.sin6_addr = in6addr_loopback;
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    }
    if (do_listen)
        assert_int_equal(listen(fd, 16), 0);
    return fd;
}

static int fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void test_open_fd(void **state)
{
    int fd = listener(AF_INET, SOCK_STREAM, 1);
    int port = th_local_port(fd);
    ssock_server_options o;
    ssock_server *srv = NULL;
    ssock_socket *s = NULL;

    ssock_server_options_init(&o);
    o.accept_timeout_ms = ACC_MS;
    o.port = 1;             /* ignored */
    o.addr = "203.0.113.1"; /* ignored */
    o.backlog = 1;          /* ignored */
    assert_int_equal(ssock_server_open_fd(&srv, fd, &o), 0);
    assert_int_equal(ssock_server_fd(srv), fd);
    assert_int_equal(ssock_server_local_port(srv), port);
    assert_string_equal(ssock_server_host(srv), "127.0.0.1");
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);

    int cfd = client(port);
    assert_int_equal(acc_wait(srv, MODE(state), LONG_MS, &s), 0);
    send_all(cfd, "abc", 3);
    sock_expect(s, "abc");
    assert_int_equal(ssock_server_accept_timeout(srv), ACC_MS);
    /* The accept timeout applies: nothing comes in ACC_MS. */
    int64_t t0 = th_now_ms();
    ssock_socket *none = NULL;
    assert_int_equal(ssock_server_accept(srv, &none), SSOCK_ETIMEOUT);
    assert_true(th_now_ms() - t0 >= ACC_MS - 1);

    /* Close: the fd is released, the accepted socket fails. */
    assert_int_equal(ssock_server_close(srv), 0);
    assert_false(fd_open(fd));
    char b[4];
    size_t n = 0;
    assert_int_equal(ssock_socket_read(s, b, sizeof b, &n),
                     SSOCK_ESERVERCLOSED);
    assert_int_equal(ssock_socket_write(s, "x", 1, NULL), SSOCK_ESERVERCLOSED);
    assert_int_equal(ssock_server_accept(srv, &none), SSOCK_ECLOSED);
    ssock_socket_free(s);
    ssock_server_free(srv);
    close(cfd);

    /* NULL options: the defaults. */
    fd = listener(AF_INET, SOCK_STREAM, 1);
    assert_int_equal(ssock_server_open_fd(&srv, fd, NULL), 0);
    assert_int_equal(ssock_server_accept_timeout(srv),
                     SSOCK_DEFAULT_ACCEPT_TIMEOUT_MS);
    ssock_server_free(srv);
    assert_false(fd_open(fd));
}

static void test_open_fd_ipv6(void **state)
{
    TH_REQUIRE_IPV6();
    int fd = listener(AF_INET6, SOCK_STREAM, 1);
    int port = th_local_port(fd);
    ssock_server *srv = NULL;
    ssock_socket *s = NULL;
    ssock_server_options o;

    ssock_server_options_init(&o);
    o.accept_timeout_ms = ACC_MS;
    assert_int_equal(ssock_server_open_fd(&srv, fd, &o), 0);
    assert_string_equal(ssock_server_host(srv), "::1");
    int cfd = th_connect(AF_INET6, port, LONG_MS);
    assert_true(cfd >= 0);
    assert_int_equal(acc_wait(srv, MODE(state), LONG_MS, &s), 0);
    assert_string_equal(ssock_socket_peer_host(s), "::1");
    ssock_socket_free(s);
    ssock_server_free(srv);
    close(cfd);
}

/* Socket activation with PROXY on: the options other than the binding
 * ones apply. */
static void test_open_fd_proxy(void **state)
{
    int fd = listener(AF_INET, SOCK_STREAM, 1);
    ssock_server_options o;
    ssock_server *srv = NULL;
    ssock_socket *s = NULL;
    char h[64];
    size_t n = v1(h, sizeof h, "TCP4 192.0.2.44 192.0.2.1 4444 80");

    ssock_server_options_init(&o);
    o.accept_timeout_ms = ACC_MS;
    o.proxy_protocol = SSOCK_PROXY_V1;
    assert_int_equal(ssock_server_open_fd(&srv, fd, &o), 0);
    int cfd = client(th_local_port(fd));
    send_all(cfd, h, n);
    assert_int_equal(acc_wait(srv, MODE(state), LONG_MS, &s), 0);
    assert_string_equal(ssock_socket_peer_host(s), "192.0.2.44");
    ssock_socket_free(s);
    ssock_server_free(srv);
    close(cfd);
}

static void expect_not_listening(int fd, const char *what)
{
    ssock_server *srv = (ssock_server *)&srv;
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    int rc = ssock_server_open_fd(&srv, fd, NULL);
    if (rc != SSOCK_ENOTLISTENING)
        fail_msg("%s: %s, expected SSOCK_ENOTLISTENING", what,
                 ssock_err_name(rc));
    assert_null(srv);
    /* Left open and untouched. */
    assert_true(fd_open(fd));
    assert_int_equal(fcntl(fd, F_GETFL), fl);
    assert_int_equal(fcntl(fd, F_GETFD), fdfl);
    close(fd);
}

static void test_open_fd_errors(void **state)
{
    (void)state;
    ssock_server *srv = (ssock_server *)&srv;

    expect_not_listening(listener(AF_INET, SOCK_STREAM, 0), "bound TCP");
    expect_not_listening(socket(AF_INET, SOCK_STREAM, 0), "fresh TCP");
    expect_not_listening(listener(AF_INET, SOCK_DGRAM, 0), "UDP");
    {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof a.sun_path, "/tmp/ssock-dp-%d.sock",
                 (int)getpid());
        unlink(a.sun_path);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
        assert_int_equal(listen(fd, 4), 0);
        expect_not_listening(fd, "listening AF_UNIX");
        unlink(a.sun_path);
    }
    {
        char path[] = "/tmp/ssock-dp-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        unlink(path);
        expect_not_listening(fd, "regular file");
    }
    {
        int p[2];
        assert_int_equal(pipe(p), 0);
        expect_not_listening(p[0], "pipe");
        close(p[1]);
    }
    {
        /* A connected TCP socket (the client end of a connection). */
        int l = listener(AF_INET, SOCK_STREAM, 1);
        int c = client(th_local_port(l));
        expect_not_listening(c, "connected TCP");
        close(l);
    }
    /* fd -1, NULL out. */
    assert_int_equal(ssock_server_open_fd(&srv, -1, NULL), SSOCK_EINVAL);
    assert_null(srv);
    int fd = listener(AF_INET, SOCK_STREAM, 1);
    assert_int_equal(ssock_server_open_fd(NULL, fd, NULL), SSOCK_EINVAL);
    assert_true(fd_open(fd));
    close(fd);
}

/* Bad options: the fd is owned (closed) from then on; options not filled
 * by ssock_server_options_init(): SSOCK_EINVAL, the fd stays the
 * caller's. */
static void test_open_fd_bad_options(void **state)
{
    (void)state;
    ssock_server *srv = NULL;
    int fd = listener(AF_INET, SOCK_STREAM, 1);
    ssock_server_options o;
    ssock_server_options_init(&o);
    o.read_timeout_ms = -1;
    srv = (ssock_server *)&srv;
    assert_int_equal(ssock_server_open_fd(&srv, fd, &o), SSOCK_EBADTIMEOUT);
    assert_null(srv);
    assert_false(fd_open(fd));
    fd = listener(AF_INET, SOCK_STREAM, 1);
    ssock_server_options_init(&o);
    o.proxy_protocol = SSOCK_PROXY_ANY;
    o.proxy_trusted = "nope";
    assert_int_equal(ssock_server_open_fd(&srv, fd, &o), SSOCK_EBADADDR);
    assert_false(fd_open(fd));
    /* Options not filled by ssock_server_options_init(): SSOCK_EINVAL,
     * and the fd stays the caller's. */
    fd = listener(AF_INET, SOCK_STREAM, 1);
    memset(&o, 0, sizeof o);
    assert_int_equal(ssock_server_open_fd(&srv, fd, &o), SSOCK_EINVAL);
    assert_true(fd_open(fd));
    close(fd);
}

static void test_open_fd_enotsup(void **state)
{
    (void)state;
    ssock_server *srv = NULL;
    int fd;
    /* Options from a newer header with a field this library lacks: the
     * open fails with SSOCK_ENOTSUP, and that too takes the fd. */
    {
        struct {
            ssock_server_options o;
            uint64_t newer_field;
        } big;
        ssock_server_options_init_sized(&big.o, sizeof big);
        big.newer_field = 1;
        fd = listener(AF_INET, SOCK_STREAM, 1);
        assert_int_equal(ssock_server_open_fd(&srv, fd, &big.o), SSOCK_ENOTSUP);
        assert_null(srv);
        if (fd_open(fd)) {
            close(fd);
            fail_msg("SSOCK_ENOTSUP left the fd open; the header says only "
                     "SSOCK_EINVAL and SSOCK_ENOTLISTENING leave it");
        }
    }
}

/* proxy_protocol outside SSOCK_PROXY_*: SSOCK_EINVAL, and through
 * ssock_server_open_fd() the descriptor stays open (an argument error). A
 * malformed proxy_trusted fails the open also with the protocol off. */
static void test_proxy_option_errors(void **state)
{
    (void)state;
    ssock_server *srv = NULL;
    ssock_server_options o;
    ssock_server_options_init(&o);
    o.addr = "127.0.0.1";
    o.proxy_protocol = SSOCK_PROXY_ANY + 1;
    assert_int_equal(ssock_server_open(&srv, &o), SSOCK_EINVAL);
    assert_null(srv);
    o.proxy_protocol = -1;
    assert_int_equal(ssock_server_open(&srv, &o), SSOCK_EINVAL);
    int fd = listener(AF_INET, SOCK_STREAM, 1);
    assert_int_equal(ssock_server_open_fd(&srv, fd, &o), SSOCK_EINVAL);
    assert_null(srv);
    assert_true(fd_open(fd));
    close(fd);
    o.proxy_protocol = SSOCK_PROXY_OFF;
    o.proxy_trusted = "10.0.0.1/8";
    assert_int_equal(ssock_server_open(&srv, &o), SSOCK_EBADADDR);
    assert_null(srv);
    o.proxy_trusted = "10.0.0.0/8";
    assert_int_equal(ssock_server_open(&srv, &o), 0);
    ssock_server_free(srv);
    o.proxy_timeout_ms = -1;
    srv = NULL;
    assert_int_equal(ssock_server_open(&srv, &o), SSOCK_EBADTIMEOUT);
    assert_null(srv);
}

static void test_open_fd_closed_fd(void **state)
{
    (void)state;
    ssock_server *srv = NULL;
    int fd;
    /* A closed descriptor number. */
    fd = listener(AF_INET, SOCK_STREAM, 1);
    close(fd);
    int rc = ssock_server_open_fd(&srv, fd, NULL);
    if (rc != SSOCK_ENOTLISTENING && rc != -EBADF)
        fail_msg("closed fd: %s", ssock_err_name(rc));
}

/* systemd's LISTEN_PID / LISTEN_FDS. */
static void listen_env(const char *pid, const char *fds)
{
    if (pid != NULL)
        assert_int_equal(setenv("LISTEN_PID", pid, 1), 0);
    else
        assert_int_equal(unsetenv("LISTEN_PID"), 0);
    if (fds != NULL)
        assert_int_equal(setenv("LISTEN_FDS", fds, 1), 0);
    else
        assert_int_equal(unsetenv("LISTEN_FDS"), 0);
}

static void test_listen_fds(void **state)
{
    (void)state;
    char me[32], other[32], me_junk[40];
    snprintf(me, sizeof me, "%d", (int)getpid());
    snprintf(other, sizeof other, "%d", (int)getppid());
    snprintf(me_junk, sizeof me_junk, "%dx", (int)getpid());
    const struct {
        const char *pid, *fds;
        int want;
    } cases[] = {
        {me, "1", 1},          {me, "3", 3},   {me, "0", 0},    {me, NULL, 0},
        {me, "", 0},           {me, "abc", 0}, {me, "2x", 0},   {me, "-1", 0},
        {me, "4294967297", 0}, /* 2^32 + 1: no wrap-around */
        {other, "1", 0},       {"1", "1", 0},  {"0", "1", 0},   {"", "1", 0},
        {me_junk, "1", 0},     {NULL, "1", 0}, {NULL, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        listen_env(cases[i].pid, cases[i].fds);
        int got = ssock_listen_fds();
        if (got != cases[i].want)
            fail_msg("LISTEN_PID=%s LISTEN_FDS=%s: %d, expected %d",
                     cases[i].pid ? cases[i].pid : "(unset)",
                     cases[i].fds ? cases[i].fds : "(unset)", got,
                     cases[i].want);
        /* The environment is left as it was. */
        const char *p = getenv("LISTEN_PID"), *f = getenv("LISTEN_FDS");
        assert_true(cases[i].pid ? p && strcmp(p, cases[i].pid) == 0 : !p);
        assert_true(cases[i].fds ? f && strcmp(f, cases[i].fds) == 0 : !f);
    }
    listen_env(NULL, NULL);
    assert_int_equal(SSOCK_LISTEN_FDS_START, 3);
}

/* The whole protocol: a listener passed at fd 3 (as systemd does). */
static void test_listen_fds_serve(void **state)
{
    int l = listener(AF_INET, SOCK_STREAM, 1);
    int port = th_local_port(l);
    int saved = -1; /* what fd 3 was, when it was something else */
    char me[32];
    ssock_server *srv = NULL;
    ssock_socket *s = NULL;

    if (l != SSOCK_LISTEN_FDS_START) {
        saved = dup(SSOCK_LISTEN_FDS_START); /* -1: fd 3 was free */
        assert_int_equal(dup2(l, SSOCK_LISTEN_FDS_START),
                         SSOCK_LISTEN_FDS_START);
        close(l);
    }
    snprintf(me, sizeof me, "%d", (int)getpid());
    listen_env(me, "1");
    assert_int_equal(ssock_listen_fds(), 1);
    assert_int_equal(ssock_server_open_fd(&srv, SSOCK_LISTEN_FDS_START, NULL),
                     0);
    int cfd = client(port);
    assert_int_equal(acc_wait(srv, MODE(state), LONG_MS, &s), 0);
    ssock_socket_free(s);
    ssock_server_free(srv);
    close(cfd);
    listen_env(NULL, NULL);
    if (saved >= 0) {
        assert_int_equal(dup2(saved, SSOCK_LISTEN_FDS_START),
                         SSOCK_LISTEN_FDS_START);
        close(saved);
    }
}

/* ======================================================================== */

#define BOTH(fn)                                                               \
    cmocka_unit_test_prestate(fn, &mode_block),                                \
        cmocka_unit_test_prestate(fn, &mode_try)

int main(void)
{
    th_sigpipe_default();
    const struct CMUnitTest tests[] = {
        BOTH(test_v1_good),
        BOTH(test_v1_longest),
        BOTH(test_v2_good),
        BOTH(test_v2_longest),
        BOTH(test_proxy_off),
        BOTH(test_malformed),
        BOTH(test_untrusted),
        BOTH(test_trust_dual_stack),
        cmocka_unit_test(test_bad_trusted_list),
        BOTH(test_header_timeout),
        BOTH(test_header_timeout_not_early),
        BOTH(test_slow_header),
        BOTH(test_stats_mix),
        BOTH(test_close_with_pending),
#if DP_TLS
        BOTH(test_tls_same_write),
        BOTH(test_tls_pieces),
        BOTH(test_tls_refusals),
        BOTH(test_tls_slow_header),
        BOTH(test_tls_source_behind_proxy),
        BOTH(test_rotate_basic),
        cmocka_unit_test_prestate(test_rotate_in_flight, &mode_try),
        BOTH(test_rotate_mid_step),
        cmocka_unit_test_prestate(test_rotate_errors, &mode_block),
        BOTH(test_rotate_load),
#else
        cmocka_unit_test(test_no_tls),
#endif
        BOTH(test_open_fd),
        BOTH(test_open_fd_ipv6),
        BOTH(test_open_fd_proxy),
        cmocka_unit_test(test_open_fd_errors),
        cmocka_unit_test(test_open_fd_bad_options),
        cmocka_unit_test(test_open_fd_enotsup),
        cmocka_unit_test(test_proxy_option_errors),
        cmocka_unit_test(test_open_fd_closed_fd),
        cmocka_unit_test(test_listen_fds),
        BOTH(test_listen_fds_serve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
