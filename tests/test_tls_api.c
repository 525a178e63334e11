/*
 * The 0.2 TLS API (issue 13, TLS side), on every built backend and, where
 * the backend has it, on TLS 1.2 and 1.3: sized ssock_tls_options and
 * ssock_tls_stats (older and newer callers), SSOCK_ETRUNCATED versus a
 * clean SSOCK_EOF, the ssock_tls_info snapshot (with the key-exchange
 * group), the key-log callback (NSS key log lines, compared with the
 * client's own), the client's certificate chain as DER, and the verify
 * hook (accept, reject).
 *
 * The peer is the in-test OpenSSL client (tests/tls_client.c); where a
 * test needs more of the client (its random, its key log, extra chain
 * certificates, one key-exchange group) it uses the client's SSL directly.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "helpers.h"
#include "ssock/tls.h"
#include "tls_client.h"

#define CERT(f) SSOCK_CERTS_DIR "/" f
#define LONG_MS 10000

static const int all_backends[] = {SSOCK_TLS_BACKEND_MBEDTLS,
                                   SSOCK_TLS_BACKEND_OPENSSL};

/* Does the backend do TLS 1.3 (mbedTLS 2.28 does not)? */
static int has_tls13(int backend)
{
    ssock_tls_options t;
    ssock_tls_config *cfg = NULL;

    ssock_tls_options_init(&t);
    t.backend = backend;
    t.cert_file = CERT("server-ecdsa.pem");
    t.key_file = CERT("server-ecdsa.key");
    t.min_version = SSOCK_TLS_VERSION_1_3;
    int rc = ssock_tls_config_new(&cfg, &t, NULL, 0);
    ssock_tls_config_free(cfg);
    if (rc != 0 && rc != SSOCK_EVERSION)
        fail_msg("probing TLS 1.3: %s", ssock_err_name(rc));
    return rc == 0;
}

/* Run fn(backend, version) for every built backend and every TLS version
 * it has (TLS1_2_VERSION, TLS1_3_VERSION). */
static void each_backend_version(void (*fn)(int backend, int version))
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
        print_message("[ backend  ] %s TLS 1.2\n", ssock_tls_backend_name(be));
        fn(be, TLS1_2_VERSION);
        if (has_tls13(be)) {
            print_message("[ backend  ] %s TLS 1.3\n",
                          ssock_tls_backend_name(be));
            fn(be, TLS1_3_VERSION);
        } else {
            print_message("[ backend  ] %s has no TLS 1.3 (mbedTLS 2.28)\n",
                          ssock_tls_backend_name(be));
        }
        ran++;
    }
    if (ran == 0)
        TH_SKIP("no TLS backend built");
}

/* ---- one server, one connection ------------------------------------------ */

typedef struct srv_opts {
    int verify;
    ssock_tls_keylog_fn keylog;
    void *keylog_arg;
    ssock_tls_verify_fn hook;
    void *hook_arg;
    ssock_event_fn on_event;
    void *on_event_arg;
    int accept_ms;
} srv_opts;

typedef struct conn {
    ssock_server *srv;
    ssock_socket *sock;
    tc_conn c;
    int accept_rc;
    int client_rc;
} conn;

typedef struct acc {
    th_call call;
    ssock_server *srv;
    ssock_socket *sock;
} acc;

static int acc_fn(void *p)
{
    acc *a = p;
    return ssock_server_accept(a->srv, &a->sock);
}

static ssock_server *server_open(int backend, const srv_opts *so)
{
    ssock_tls_options t;
    ssock_tls_config *cfg = NULL;
    ssock_server_options o;
    ssock_server *srv = NULL;
    char err[SSOCK_TLS_ERRBUF_SIZE];

    ssock_tls_options_init(&t);
    t.backend = backend;
    t.cert_file = CERT("server-ecdsa.pem");
    t.key_file = CERT("server-ecdsa.key");
    if (so->verify != SSOCK_TLS_VERIFY_NONE) {
        t.verify_client = so->verify;
        t.ca_file = CERT("ca.pem");
    }
    t.keylog = so->keylog;
    t.keylog_arg = so->keylog_arg;
    t.verify_peer = so->hook;
    t.verify_peer_arg = so->hook_arg;
    int rc = ssock_tls_config_new(&cfg, &t, err, sizeof err);
    if (rc != 0)
        fail_msg("ssock_tls_config_new: %s: %s", ssock_err_name(rc), err);
    ssock_server_options_init(&o);
    o.addr = "127.0.0.1";
    o.accept_timeout_ms = so->accept_ms > 0 ? so->accept_ms : LONG_MS;
    o.tls = cfg;
    o.on_event = so->on_event;
    o.on_event_arg = so->on_event_arg;
    rc = ssock_server_open(&srv, &o);
    ssock_tls_config_free(cfg);
    assert_int_equal(rc, 0);
    return srv;
}

/* Open a server, connect the client (TLS `version`, options `co`, then
 * `tweak` on its SSL before the first byte) and run both handshakes. The
 * results are left in k->client_rc and k->accept_rc for the caller. */
static void conn_run(conn *k, int backend, int version, const srv_opts *so,
                     tc_opts *co, void (*tweak)(tc_conn *c, void *arg),
                     void *arg)
{
    acc a;

    memset(k, 0, sizeof *k);
    k->c.fd = -1;
    k->srv = server_open(backend, so);
    a.srv = k->srv;
    a.sock = NULL;
    assert_int_equal(th_call_start(&a.call, acc_fn, &a), 0);
    co->min_version = version;
    co->max_version = version;
    int rc = tc_open(&k->c, ssock_server_local_port(k->srv), co, LONG_MS);
    if (rc != TC_OK)
        fail_msg("tc_open: %s", k->c.err);
    if (tweak != NULL)
        tweak(&k->c, arg);
    k->client_rc = tc_handshake(&k->c, LONG_MS);
    assert_true(th_call_wait(&a.call, 3 * LONG_MS));
    k->accept_rc = a.call.rc;
    k->sock = a.sock;
}

/* conn_run that must succeed. */
static void conn_ok(conn *k, int backend, int version, const srv_opts *so,
                    tc_opts *co, void (*tweak)(tc_conn *c, void *arg),
                    void *arg)
{
    conn_run(k, backend, version, so, co, tweak, arg);
    if (k->client_rc != TC_OK)
        fail_msg("client handshake: %d %s", k->client_rc, k->c.err);
    assert_int_equal(k->accept_rc, 0);
    assert_non_null(k->sock);
}

static void conn_close(conn *k)
{
    ssock_socket_free(k->sock);
    ssock_server_free(k->srv);
    tc_close(&k->c);
}

static void client_opts(tc_opts *co, int with_cert)
{
    tc_opts_init(co);
    co->ca_file = CERT("ca.pem");
    co->verify_host = "localhost";
    co->sni = "localhost";
    if (with_cert) {
        co->cert_file = CERT("client.pem");
        co->key_file = CERT("client.key");
    }
}

static const srv_opts no_srv_opts = {0};

/* ---- 1. sized options and stats ------------------------------------------ */

static int hook_never(const ssock_tls_peer *peer, void *arg)
{
    (void)peer;
    (void)arg;
    fail_msg("verify_peer called");
    return 1;
}

static void test_options_sized(void **state)
{
    ssock_tls_options o;
    ssock_tls_config *cfg = (ssock_tls_config *)&o; /* must become NULL */
    char err[SSOCK_TLS_ERRBUF_SIZE];
    (void)state;

    ssock_tls_options_init(NULL); /* no-op, no crash */
    memset(&o, 0xab, sizeof o);
    ssock_tls_options_init(&o);
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.backend, SSOCK_TLS_BACKEND_DEFAULT);
    assert_null(o.cert_file);
    assert_null(o.cert_mem);
    assert_int_equal(o.cert_len, 0);
    assert_int_equal(o.verify_client, SSOCK_TLS_VERIFY_NONE);
    assert_int_equal(o.min_version, SSOCK_TLS_VERSION_1_2);
    assert_int_equal(o.handshake_timeout_ms,
                     SSOCK_TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS);
    assert_int_equal(o.max_handshakes, SSOCK_TLS_DEFAULT_MAX_HANDSHAKES);
    assert_int_equal(o.max_handshakes_per_source, 0);
    assert_int_equal(o.source_prefix_v6, 0);
    assert_null(o.keylog);
    assert_null(o.keylog_arg);
    assert_null(o.verify_peer);
    assert_null(o.verify_peer_arg);

    /* Not filled by init: refused before anything else, nothing built. */
    o.cert_file = CERT("server-ecdsa.pem");
    o.key_file = CERT("server-ecdsa.key");
    o.struct_size = 0;
    assert_int_equal(ssock_tls_config_new(&cfg, &o, err, sizeof err),
                     SSOCK_EINVAL);
    assert_null(cfg);
    assert_non_null(strstr(err, "ssock_tls_options_init"));
    /* One byte short of the 0.1 fields: still refused. */
    o.struct_size = offsetof(ssock_tls_options, keylog) - 1;
    assert_int_equal(ssock_tls_config_new(&cfg, &o, NULL, 0), SSOCK_EINVAL);
    o.struct_size = sizeof o;
    assert_int_equal(ssock_tls_config_new(&cfg, &o, NULL, 0), 0);
    assert_string_equal(ssock_tls_config_message(cfg), "");
    ssock_tls_config_free(cfg);
    /* A verify hook without verification is a warning, not an error. */
    o.verify_peer = hook_never;
    assert_int_equal(ssock_tls_config_new(&cfg, &o, NULL, 0), 0);
    assert_non_null(
        strstr(ssock_tls_config_message(cfg), "verify_peer is unused"));
    ssock_tls_config_free(cfg);
}

/* A program built against the 0.2 layout up to source_prefix_v6 (what a
 * program of a later version with fewer fields looks like). */
struct tls_options_short {
    size_t struct_size;
    int backend;
    const char *cert_file;
    const void *cert_mem;
    size_t cert_len;
    const char *key_file;
    const void *key_mem;
    size_t key_len;
    const char *ca_file;
    const void *ca_mem;
    size_t ca_len;
    int verify_client;
    int min_version;
    const char *const *alpn;
    size_t alpn_count;
    int handshake_timeout_ms;
    int max_handshakes;
    int allow_expired_cert;
    int max_handshakes_per_source;
    int source_prefix_v6;
};

static void test_options_older_caller(void **state)
{
    (void)state;
    assert_int_equal(sizeof(struct tls_options_short),
                     offsetof(ssock_tls_options, keylog));
    /* Exactly the short size on the heap: ASan and Valgrind catch any
     * access past it. */
    struct tls_options_short *o = malloc(sizeof *o);
    assert_non_null(o);
    memset(o, 0xab, sizeof *o);
    ssock_tls_options_init_sized((ssock_tls_options *)(void *)o, sizeof *o);
    assert_int_equal(o->struct_size, sizeof *o);
    assert_int_equal(o->max_handshakes, SSOCK_TLS_DEFAULT_MAX_HANDSHAKES);
    assert_null(o->cert_file);
    o->cert_file = CERT("server-ecdsa.pem");
    o->key_file = CERT("server-ecdsa.key");
    ssock_tls_config *cfg = NULL;
    for (size_t i = 0; i < sizeof all_backends / sizeof all_backends[0]; i++) {
        if (!ssock_tls_backend_available(all_backends[i]))
            continue;
        o->backend = all_backends[i];
        assert_int_equal(
            ssock_tls_config_new(&cfg, (ssock_tls_options *)(void *)o, NULL, 0),
            0);
        assert_int_equal(ssock_tls_config_backend(cfg), all_backends[i]);
        ssock_tls_config_free(cfg);
    }
    free(o);
}

/* A program built against a newer header (a longer struct) on this
 * library: zero extra fields are fine, a set one is SSOCK_ENOTSUP. */
static void test_options_newer_caller(void **state)
{
    (void)state;
    size_t newer = sizeof(ssock_tls_options) + 32;
    unsigned char *mem = malloc(newer);
    assert_non_null(mem);
    memset(mem, 0xab, newer);
    ssock_tls_options_init_sized((ssock_tls_options *)(void *)mem, newer);
    ssock_tls_options *o = (ssock_tls_options *)(void *)mem;
    assert_int_equal(o->struct_size, newer);
    for (size_t i = sizeof(ssock_tls_options); i < newer; i++)
        assert_int_equal(mem[i], 0);
    o->cert_file = CERT("server-ecdsa.pem");
    o->key_file = CERT("server-ecdsa.key");
    ssock_tls_config *cfg = NULL;
    char err[SSOCK_TLS_ERRBUF_SIZE];
    assert_int_equal(ssock_tls_config_new(&cfg, o, err, sizeof err), 0);
    ssock_tls_config_free(cfg);
    cfg = NULL;
    mem[sizeof(ssock_tls_options) + 5] = 1;
    assert_int_equal(ssock_tls_config_new(&cfg, o, err, sizeof err),
                     SSOCK_ENOTSUP);
    assert_null(cfg);
    assert_non_null(strstr(err, "unknown"));
    free(mem);
}

/* The 0.2 stats up to handshakes_dropped (an older caller's struct). */
struct tls_stats_short {
    uint64_t accepted;
    uint64_t handshakes_ok;
    uint64_t handshakes_failed;
    uint64_t handshakes_timed_out;
    uint64_t handshakes_dropped;
};

static void run_stats_sized(int backend, int version)
{
    conn k;
    tc_opts co;
    ssock_tls_stats st;

    client_opts(&co, 0);
    conn_ok(&k, backend, version, &no_srv_opts, &co, NULL, NULL);
    /* Older caller: exactly its size on the heap. */
    struct tls_stats_short *s = malloc(sizeof *s);
    assert_non_null(s);
    memset(s, 0xab, sizeof *s);
    assert_int_equal(ssock_server_tls_stats_sized(
                         k.srv, (ssock_tls_stats *)(void *)s, sizeof *s),
                     0);
    assert_int_equal(s->accepted, 1);
    assert_int_equal(s->handshakes_ok, 1);
    assert_int_equal(s->handshakes_failed, 0);
    assert_int_equal(s->handshakes_dropped, 0);
    free(s);
    /* Newer caller: the counters this library does not have are 0. */
    size_t newer = sizeof(ssock_tls_stats) + 24;
    unsigned char *mem = malloc(newer);
    assert_non_null(mem);
    memset(mem, 0xab, newer);
    assert_int_equal(ssock_server_tls_stats_sized(
                         k.srv, (ssock_tls_stats *)(void *)mem, newer),
                     0);
    for (size_t i = sizeof(ssock_tls_stats); i < newer; i++)
        assert_int_equal(mem[i], 0);
    assert_int_equal(((ssock_tls_stats *)(void *)mem)->handshakes_ok, 1);
    free(mem);
    /* The macro: this header's size. */
    memset(&st, 0xab, sizeof st);
    assert_int_equal(ssock_server_tls_stats(k.srv, &st), 0);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.handshakes_source_limited, 0);
    assert_int_equal(ssock_server_tls_stats_sized(k.srv, &st, 0), SSOCK_EINVAL);
    conn_close(&k);
}

static void test_stats_sized(void **state)
{
    ssock_tls_stats st;
    th_pair p;
    (void)state;

    memset(&st, 0xab, sizeof st);
    assert_int_equal(ssock_server_tls_stats(NULL, &st), SSOCK_EINVAL);
    assert_int_equal(st.accepted, 0);
    assert_int_equal(th_pair_open(&p, "127.0.0.1", AF_INET), 0);
    assert_int_equal(ssock_server_tls_stats(p.srv, NULL), SSOCK_EINVAL);
    memset(&st, 0xab, sizeof st);
    assert_int_equal(ssock_server_tls_stats(p.srv, &st), SSOCK_ENOTTLS);
    assert_int_equal(st.handshakes_ok, 0);
    assert_int_equal(st.handshakes_source_limited, 0);
    th_pair_free(&p);
    each_backend_version(run_stats_sized);
}

/* ---- 2. truncation ---------------------------------------------------------
 */

static void run_truncation(int backend, int version)
{
    conn k;
    tc_opts co;
    char b[16];
    size_t n = 99;

    /* close_notify, then FIN: data, then a clean SSOCK_EOF, sticky. */
    client_opts(&co, 0);
    conn_ok(&k, backend, version, &no_srv_opts, &co, NULL, NULL);
    assert_int_equal(tc_write_all(&k.c, "abc", 3, LONG_MS), TC_OK);
    assert_int_equal(tc_shutdown(&k.c), TC_OK);
    tc_close(&k.c);
    assert_int_equal(ssock_socket_read(k.sock, b, sizeof b, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(b, "abc", 3);
    assert_int_equal(ssock_socket_read(k.sock, b, sizeof b, &n), SSOCK_EOF);
    assert_int_equal(n, 0);
    assert_int_equal(ssock_socket_read(k.sock, b, sizeof b, &n), SSOCK_EOF);
    conn_close(&k);

    /* FIN without close_notify: data, then SSOCK_ETRUNCATED, sticky. */
    client_opts(&co, 0);
    conn_ok(&k, backend, version, &no_srv_opts, &co, NULL, NULL);
    assert_int_equal(tc_write_all(&k.c, "abc", 3, LONG_MS), TC_OK);
    tc_close(&k.c); /* a plain FIN */
    assert_int_equal(ssock_socket_read(k.sock, b, sizeof b, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ssock_socket_read(k.sock, b, sizeof b, &n),
                     SSOCK_ETRUNCATED);
    assert_int_equal(n, 0);
    assert_non_null(strstr(ssock_socket_tls_last_error(k.sock), "truncation"));
    assert_int_equal(ssock_socket_read(k.sock, b, sizeof b, &n),
                     SSOCK_ETRUNCATED);
    assert_int_equal(ssock_err_classify(SSOCK_ETRUNCATED), SSOCK_ERRCLASS_PEER);
    /* Writing is not affected by what reading saw. */
    conn_close(&k);
}

static void test_truncation(void **state)
{
    (void)state;
    each_backend_version(run_truncation);
}

/* ---- 3. the facts snapshot -------------------------------------------------
 */

static void use_p256(tc_conn *c, void *arg)
{
    (void)arg;
    assert_int_equal(SSL_set1_groups_list((SSL *)c->ssl, "P-256"), 1);
}

/* X448 (not offered by ssock) first: on TLS 1.3 its key share is
 * refused and a HelloRetryRequest asks for P-256. */
static void use_x448_p256(tc_conn *c, void *arg)
{
    (void)arg;
    assert_int_equal(SSL_set1_groups_list((SSL *)c->ssl, "X448:P-256"), 1);
}

static const char *client_group(const tc_conn *c)
{
    switch (SSL_get_negotiated_group((SSL *)c->ssl)) {
    case NID_X25519:
        return "x25519";
    case NID_X9_62_prime256v1:
        return "secp256r1";
    default:
        return "?";
    }
}

static void run_info(int backend, int version)
{
    conn k;
    tc_opts co;
    ssock_tls_info info;

    client_opts(&co, 0);
    conn_ok(&k, backend, version, &no_srv_opts, &co, NULL, NULL);
    memset(&info, 0xab, sizeof info);
    assert_int_equal(ssock_socket_tls_info(k.sock, &info), 0);
    assert_int_equal(info.struct_size, sizeof info);
    assert_string_equal(info.version,
                        version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2");
    assert_string_equal(info.version, ssock_socket_tls_version(k.sock));
    assert_string_equal(info.cipher, tc_cipher(&k.c));
    assert_ptr_equal(info.cipher, ssock_socket_tls_cipher(k.sock));
    /* The client's default first choice. */
    assert_non_null(info.group);
    assert_string_equal(info.group, "x25519");
    assert_string_equal(info.group, client_group(&k.c));
    assert_string_equal(info.sni, "localhost");
    assert_null(info.alpn);
    assert_null(info.peer_subject);
    assert_int_equal(info.resumed, 0);
    /* An older caller that knows only struct_size, version and cipher. */
    size_t older = offsetof(ssock_tls_info, group);
    unsigned char *mem = malloc(older);
    assert_non_null(mem);
    memset(mem, 0xab, older);
    assert_int_equal(ssock_socket_tls_info_sized(
                         k.sock, (ssock_tls_info *)(void *)mem, older),
                     0);
    /* Read the fields back as bytes: the buffer is shorter than the
     * struct, which is the point. */
    size_t got_size;
    const char *got_version, *got_cipher;
    memcpy(&got_size, mem + offsetof(ssock_tls_info, struct_size),
           sizeof got_size);
    memcpy(&got_version, mem + offsetof(ssock_tls_info, version),
           sizeof got_version);
    memcpy(&got_cipher, mem + offsetof(ssock_tls_info, cipher),
           sizeof got_cipher);
    assert_int_equal(got_size, older);
    assert_ptr_equal(got_version, info.version);
    assert_ptr_equal(got_cipher, info.cipher);
    free(mem);
    /* Still there after close (the facts are the socket's copy). */
    assert_int_equal(ssock_socket_close(k.sock), 0);
    memset(&info, 0, sizeof info);
    assert_int_equal(ssock_socket_tls_info(k.sock, &info), 0);
    assert_string_equal(info.group, "x25519");
    conn_close(&k);

    /* A client that offers P-256 only. */
    client_opts(&co, 0);
    conn_ok(&k, backend, version, &no_srv_opts, &co, use_p256, NULL);
    assert_int_equal(ssock_socket_tls_info(k.sock, &info), 0);
    assert_non_null(info.group);
    assert_string_equal(info.group, "secp256r1");
    assert_string_equal(info.group, client_group(&k.c));
    conn_close(&k);

    /* After a HelloRetryRequest (TLS 1.3). */
    client_opts(&co, 0);
    conn_ok(&k, backend, version, &no_srv_opts, &co, use_x448_p256, NULL);
    assert_int_equal(ssock_socket_tls_info(k.sock, &info), 0);
    assert_non_null(info.group);
    assert_string_equal(info.group, "secp256r1");
    assert_string_equal(info.group, client_group(&k.c));
    conn_close(&k);
}

/* The getters from another thread while the owner closes the socket: the
 * facts are the socket's own copy (run under TSan in the gate). */
typedef struct reader {
    ssock_socket *sock;
    atomic_int stop;
    int rounds;
    int bad;
} reader;

static void *read_facts(void *p)
{
    reader *r = p;
    ssock_tls_info info;
    /* No cmocka assertions off the main thread: count what is wrong. */
    while (!atomic_load(&r->stop) || r->rounds == 0) {
        if (ssock_socket_tls_info(r->sock, &info) != 0 ||
            info.version != ssock_socket_tls_version(r->sock) ||
            info.group == NULL || ssock_socket_tls_cipher(r->sock) == NULL ||
            ssock_socket_tls_peer_cert_count(r->sock) != 0)
            r->bad++;
        r->rounds++;
    }
    return NULL;
}

static void run_info_during_close(int backend, int version)
{
    conn k;
    tc_opts co;
    reader r;
    th_thread t;

    client_opts(&co, 0);
    conn_ok(&k, backend, version, &no_srv_opts, &co, NULL, NULL);
    r.sock = k.sock;
    atomic_init(&r.stop, 0);
    r.rounds = 0;
    r.bad = 0;
    assert_int_equal(th_thread_start(&t, read_facts, &r), 0);
    assert_int_equal(ssock_socket_close(k.sock), 0);
    atomic_store(&r.stop, 1);
    assert_true(th_thread_join(&t, LONG_MS));
    assert_true(r.rounds > 0);
    assert_int_equal(r.bad, 0);
    conn_close(&k);
}

static void test_info_during_close(void **state)
{
    (void)state;
    each_backend_version(run_info_during_close);
}

static void test_info(void **state)
{
    ssock_tls_info info;
    th_pair p;
    (void)state;

    assert_int_equal(ssock_socket_tls_info(NULL, &info), SSOCK_EINVAL);
    assert_int_equal(th_pair_open(&p, "127.0.0.1", AF_INET), 0);
    assert_int_equal(ssock_socket_tls_info(p.sock, NULL), SSOCK_EINVAL);
    assert_int_equal(ssock_socket_tls_info_sized(p.sock, &info, 1),
                     SSOCK_EINVAL);
    memset(&info, 0xab, sizeof info);
    assert_int_equal(ssock_socket_tls_info(p.sock, &info), SSOCK_ENOTTLS);
    assert_null(info.version);
    assert_null(info.group);
    assert_int_equal(info.resumed, 0);
    assert_null(ssock_socket_tls_last_error(p.sock));
    th_pair_free(&p);
    assert_null(ssock_socket_tls_last_error(NULL));
    each_backend_version(run_info);
}

/* ---- 4. key log ------------------------------------------------------------
 */

#define MAX_LINES 16

typedef struct keylog {
    pthread_mutex_t mu;
    int n;
    char line[MAX_LINES][256];
} keylog;

static void keylog_add(keylog *k, const char *line)
{
    pthread_mutex_lock(&k->mu);
    if (k->n < MAX_LINES)
        snprintf(k->line[k->n++], sizeof k->line[0], "%s", line);
    pthread_mutex_unlock(&k->mu);
}

static void server_keylog(const char *line, void *arg)
{
    keylog_add(arg, line);
}

/* OpenSSL's client key log callback has no argument. */
static keylog *g_client_log;

static void client_keylog(const SSL *ssl, const char *line)
{
    (void)ssl;
    keylog_add(g_client_log, line);
}

static void log_client(tc_conn *c, void *arg)
{
    g_client_log = arg;
    SSL_CTX_set_keylog_callback((SSL_CTX *)c->ctx, client_keylog);
}

static int has_line(const keylog *k, const char *line)
{
    for (int i = 0; i < k->n; i++)
        if (strcmp(k->line[i], line) == 0)
            return 1;
    return 0;
}

static int has_label(const keylog *k, const char *label)
{
    size_t n = strlen(label);
    for (int i = 0; i < k->n; i++)
        if (strncmp(k->line[i], label, n) == 0 && k->line[i][n] == ' ')
            return 1;
    return 0;
}

static void run_keylog(int backend, int version)
{
    conn k;
    tc_opts co;
    static keylog srv_log, cli_log;
    srv_opts so = no_srv_opts;
    unsigned char cr[32];
    char crhex[65];

    memset(&srv_log, 0, sizeof srv_log);
    memset(&cli_log, 0, sizeof cli_log);
    pthread_mutex_init(&srv_log.mu, NULL);
    pthread_mutex_init(&cli_log.mu, NULL);
    so.keylog = server_keylog;
    so.keylog_arg = &srv_log;
    client_opts(&co, 0);
    conn_ok(&k, backend, version, &so, &co, log_client, &cli_log);
    /* Lines are complete once the server's handshake is (TLS 1.3: the
     * client application secrets are derived when its Finished has been
     * checked). */
    assert_int_equal(SSL_get_client_random((SSL *)k.c.ssl, cr, sizeof cr),
                     sizeof cr);
    for (int i = 0; i < 32; i++)
        snprintf(crhex + 2 * i, 3, "%02x", cr[i]);
    size_t hash_hex =
        strstr(ssock_socket_tls_cipher(k.sock), "SHA384") != NULL ? 96 : 64;
    pthread_mutex_lock(&srv_log.mu);
    assert_true(srv_log.n > 0);
    for (int i = 0; i < srv_log.n; i++) {
        const char *l = srv_log.line[i];
        const char *sp = strchr(l, ' ');
        print_message("    %.40s...\n", l);
        assert_non_null(sp);
        /* LABEL <64 hex of the client's random> <secret hex> */
        assert_memory_equal(sp + 1, crhex, 64);
        assert_int_equal(sp[65], ' ');
        size_t slen = strlen(sp + 66);
        if (strncmp(l, "CLIENT_RANDOM ", 14) == 0)
            assert_int_equal(slen, 96); /* the 48-byte master secret */
        else
            assert_int_equal(slen, hash_hex);
        assert_int_equal(strspn(sp + 66, "0123456789abcdef"), slen);
        /* the same line the client logged: the same secret */
        assert_true(has_line(&cli_log, l));
    }
    if (version == TLS1_2_VERSION) {
        assert_int_equal(srv_log.n, 1);
        assert_true(has_label(&srv_log, "CLIENT_RANDOM"));
    } else {
        assert_true(has_label(&srv_log, "CLIENT_HANDSHAKE_TRAFFIC_SECRET"));
        assert_true(has_label(&srv_log, "SERVER_HANDSHAKE_TRAFFIC_SECRET"));
        assert_true(has_label(&srv_log, "CLIENT_TRAFFIC_SECRET_0"));
        assert_true(has_label(&srv_log, "SERVER_TRAFFIC_SECRET_0"));
        assert_false(has_label(&srv_log, "CLIENT_RANDOM"));
    }
    pthread_mutex_unlock(&srv_log.mu);
    conn_close(&k);
    pthread_mutex_destroy(&srv_log.mu);
    pthread_mutex_destroy(&cli_log.mu);
}

static void test_keylog(void **state)
{
    (void)state;
    each_backend_version(run_keylog);
}

/* No key log without the option, whatever the environment says. */
static void run_no_env_keylog(int backend, int version)
{
    char path[64];
    struct stat st;
    conn k;
    tc_opts co;

    snprintf(path, sizeof path, "/tmp/ssock-keylog-%ld.txt", (long)getpid());
    (void)unlink(path);
    assert_int_equal(setenv("SSLKEYLOGFILE", path, 1), 0);
    client_opts(&co, 0);
    conn_ok(&k, backend, version, &no_srv_opts, &co, NULL, NULL);
    conn_close(&k);
    assert_int_equal(unsetenv("SSLKEYLOGFILE"), 0);
    assert_int_not_equal(stat(path, &st), 0);
}

static void test_keylog_not_from_env(void **state)
{
    (void)state;
    each_backend_version(run_no_env_keylog);
}

/* ---- 5. the client's chain as DER ------------------------------------------
 */

static unsigned char *pem_der(const char *file, int *len)
{
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    unsigned char *der = NULL;
    *len = i2d_X509(x, &der);
    X509_free(x);
    assert_true(*len > 0);
    return der;
}

/* The client sends its leaf alone (OpenSSL would otherwise complete the
 * chain from its trust store and send the CA as well). */
static void leaf_only(tc_conn *c, void *arg)
{
    (void)arg;
    SSL_set_mode((SSL *)c->ssl, SSL_MODE_NO_AUTO_CHAIN);
}

/* The client also sends the CA (as if it were an intermediate). */
static void send_ca_too(tc_conn *c, void *arg)
{
    (void)arg;
    FILE *f = fopen(CERT("ca.pem"), "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    assert_int_equal(SSL_add1_chain_cert((SSL *)c->ssl, x), 1);
    X509_free(x);
}

static void run_peer_chain(int backend, int version)
{
    conn k;
    tc_opts co;
    srv_opts so = no_srv_opts;
    const unsigned char *der = (const unsigned char *)"x";
    size_t len = 99;
    int leaf_len, ca_len;
    unsigned char *leaf = pem_der(CERT("client.pem"), &leaf_len);
    unsigned char *ca = pem_der(CERT("ca.pem"), &ca_len);

    /* Leaf only. */
    so.verify = SSOCK_TLS_VERIFY_REQUIRED;
    client_opts(&co, 1);
    conn_ok(&k, backend, version, &so, &co, leaf_only, NULL);
    assert_int_equal(ssock_socket_tls_peer_cert_count(k.sock), 1);
    assert_int_equal(ssock_socket_tls_peer_cert(k.sock, 0, &der, &len), 0);
    assert_int_equal(len, (size_t)leaf_len);
    assert_memory_equal(der, leaf, len);
    assert_int_equal(ssock_socket_tls_peer_cert(k.sock, 1, &der, &len),
                     SSOCK_EINVAL);
    assert_null(der);
    assert_int_equal(len, 0);
    assert_int_equal(ssock_socket_tls_peer_cert(k.sock, 0, NULL, &len),
                     SSOCK_EINVAL);
    /* Kept after close. */
    assert_int_equal(ssock_socket_close(k.sock), 0);
    assert_int_equal(ssock_socket_tls_peer_cert(k.sock, 0, &der, &len), 0);
    assert_memory_equal(der, leaf, len);
    conn_close(&k);

    /* Leaf and CA, as sent. */
    client_opts(&co, 1);
    conn_ok(&k, backend, version, &so, &co, send_ca_too, NULL);
    assert_int_equal(ssock_socket_tls_peer_cert_count(k.sock), 2);
    assert_int_equal(ssock_socket_tls_peer_cert(k.sock, 0, &der, &len), 0);
    assert_int_equal(len, (size_t)leaf_len);
    assert_memory_equal(der, leaf, len);
    assert_int_equal(ssock_socket_tls_peer_cert(k.sock, 1, &der, &len), 0);
    assert_int_equal(len, (size_t)ca_len);
    assert_memory_equal(der, ca, len);
    conn_close(&k);

    /* Optional, and the client sends none: nothing. */
    so.verify = SSOCK_TLS_VERIFY_OPTIONAL;
    client_opts(&co, 0);
    conn_ok(&k, backend, version, &so, &co, NULL, NULL);
    assert_int_equal(ssock_socket_tls_peer_cert_count(k.sock), 0);
    assert_int_equal(ssock_socket_tls_peer_cert(k.sock, 0, &der, &len),
                     SSOCK_EINVAL);
    assert_null(ssock_socket_tls_peer_subject(k.sock));
    conn_close(&k);

    /* No verification asked: a certificate is not even requested. */
    so.verify = SSOCK_TLS_VERIFY_NONE;
    client_opts(&co, 1);
    conn_ok(&k, backend, version, &so, &co, NULL, NULL);
    assert_int_equal(ssock_socket_tls_peer_cert_count(k.sock), 0);
    conn_close(&k);
    OPENSSL_free(leaf);
    OPENSSL_free(ca);
}

static void test_peer_chain(void **state)
{
    th_pair p;
    const unsigned char *der;
    size_t len;
    (void)state;

    assert_int_equal(ssock_socket_tls_peer_cert_count(NULL), 0);
    assert_int_equal(ssock_socket_tls_peer_cert(NULL, 0, &der, &len),
                     SSOCK_EINVAL);
    assert_int_equal(th_pair_open(&p, "127.0.0.1", AF_INET), 0);
    assert_int_equal(ssock_socket_tls_peer_cert_count(p.sock), 0);
    assert_int_equal(ssock_socket_tls_peer_cert(p.sock, 0, &der, &len),
                     SSOCK_ENOTTLS);
    th_pair_free(&p);
    each_backend_version(run_peer_chain);
}

/* ---- 6. the verify hook ----------------------------------------------------
 */

typedef struct hook_state {
    int verdict;
    int calls;
    pthread_t thread;
    size_t count;
    unsigned char leaf[4096];
    size_t leaf_len;
    char subject[256];
} hook_state;

static int hook(const ssock_tls_peer *peer, void *arg)
{
    hook_state *h = arg;
    h->calls++;
    h->thread = pthread_self();
    assert_true(peer->struct_size >= sizeof *peer);
    h->count = peer->count;
    assert_true(peer->count >= 1);
    assert_true(peer->der_len[0] <= sizeof h->leaf);
    memcpy(h->leaf, peer->der[0], peer->der_len[0]);
    h->leaf_len = peer->der_len[0];
    snprintf(h->subject, sizeof h->subject, "%s",
             peer->subject != NULL ? peer->subject : "(null)");
    return h->verdict;
}

typedef struct ev_log {
    int failed;
    int status;
    char detail[256];
} ev_log;

static void on_event(const ssock_event *ev, void *arg)
{
    ev_log *e = arg;
    if (ev->type == SSOCK_EVENT_HANDSHAKE_FAILED) {
        e->failed++;
        e->status = ev->status;
        snprintf(e->detail, sizeof e->detail, "%s", ev->detail);
    }
}

static void run_verify_hook(int backend, int version)
{
    conn k;
    tc_opts co;
    srv_opts so = no_srv_opts;
    hook_state h;
    ev_log ev;
    ssock_tls_stats st;
    int leaf_len;
    unsigned char *leaf = pem_der(CERT("client.pem"), &leaf_len);

    /* Accept: called once, on the accepting thread, with the chain. */
    memset(&h, 0, sizeof h);
    so.verify = SSOCK_TLS_VERIFY_REQUIRED;
    so.hook = hook;
    so.hook_arg = &h;
    client_opts(&co, 1);
    conn_ok(&k, backend, version, &so, &co, leaf_only, NULL);
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.count, 1);
    assert_int_equal(h.leaf_len, (size_t)leaf_len);
    assert_memory_equal(h.leaf, leaf, h.leaf_len);
    assert_string_equal(h.subject, ssock_socket_tls_peer_subject(k.sock));
    assert_int_not_equal(pthread_equal(h.thread, pthread_self()), 1);
    conn_close(&k);

    /* Reject: the handshake fails with the backend's alert, is counted as
     * failed, and the event says why. */
    memset(&h, 0, sizeof h);
    memset(&ev, 0, sizeof ev);
    h.verdict = 1;
    so.on_event = on_event;
    so.on_event_arg = &ev;
    so.accept_ms = 1500;
    client_opts(&co, 1);
    conn_run(&k, backend, version, &so, &co, NULL, NULL);
    int rc = k.client_rc;
    if (rc == TC_OK) {
        /* TLS 1.3: the client is done before the server has checked its
         * certificate; the alert comes on its first read. */
        char b[8];
        size_t n;
        rc = tc_read_some(&k.c, b, sizeof b, &n, LONG_MS);
    }
    assert_int_equal(rc, TC_ERR);
    const char *alert = backend == SSOCK_TLS_BACKEND_OPENSSL ? "bad certificate"
                                                             : "access denied";
    /* mbedTLS 3.6 on TLS 1.3 sends its alert under the server handshake
     * keys after the client has moved to the application keys, so the
     * client cannot read it (the same for every client-certificate
     * failure on that backend, not only this hook's). */
    if (backend == SSOCK_TLS_BACKEND_MBEDTLS && version == TLS1_3_VERSION &&
        strstr(k.c.err, alert) == NULL)
        alert = "bad record mac";
    if (strstr(k.c.err, alert) == NULL)
        fail_msg("client error '%s' does not name the alert '%s'", k.c.err,
                 alert);
    print_message("    rejected: client saw '%s'\n", k.c.err);
    assert_int_equal(k.accept_rc, SSOCK_ETIMEOUT);
    assert_null(k.sock);
    assert_int_equal(h.calls, 1);
    assert_int_equal(ev.failed, 1);
    assert_int_equal(ev.status, SSOCK_ETLS);
    assert_non_null(strstr(ev.detail, "rejected by verify_peer"));
    assert_non_null(
        strstr(ssock_server_tls_last_error(k.srv), "rejected by verify_peer"));
    assert_int_equal(ssock_server_tls_stats(k.srv, &st), 0);
    assert_int_equal(st.handshakes_failed, 1);
    assert_int_equal(st.handshakes_ok, 0);
    conn_close(&k);

    /* Not reached when the backend has already refused the certificate
     * (another CA), nor when no certificate is sent under _OPTIONAL. */
    memset(&h, 0, sizeof h);
    memset(&ev, 0, sizeof ev);
    client_opts(&co, 1);
    co.cert_file = CERT("client-unknown.pem");
    co.key_file = CERT("client-unknown.key");
    conn_run(&k, backend, version, &so, &co, NULL, NULL);
    if (k.client_rc == TC_OK) {
        char b[8];
        size_t n;
        (void)tc_read_some(&k.c, b, sizeof b, &n, LONG_MS);
    }
    print_message("    unknown CA: client saw '%s'\n", k.c.err);
    assert_int_equal(k.accept_rc, SSOCK_ETIMEOUT);
    assert_int_equal(h.calls, 0);
    assert_int_equal(ev.failed, 1);
    assert_null(strstr(ev.detail, "verify_peer"));
    conn_close(&k);
    so.verify = SSOCK_TLS_VERIFY_OPTIONAL;
    so.accept_ms = 0;
    client_opts(&co, 0);
    conn_ok(&k, backend, version, &so, &co, NULL, NULL);
    assert_int_equal(h.calls, 0);
    conn_close(&k);
    OPENSSL_free(leaf);
}

static void test_verify_hook(void **state)
{
    (void)state;
    each_backend_version(run_verify_hook);
}

/* ---- 7. names --------------------------------------------------------------
 */

static void run_names(int backend, int version)
{
    conn k;
    tc_opts co;

    client_opts(&co, 0);
    conn_ok(&k, backend, version, &no_srv_opts, &co, NULL, NULL);
    /* The deprecated 0.1 name still answers the same. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    assert_ptr_equal(ssock_socket_tls_last_error(k.sock),
                     ssock_socket_tls_error(k.sock));
#pragma GCC diagnostic pop
    assert_string_equal(ssock_socket_tls_last_error(k.sock), "");
    conn_close(&k);
}

static void test_names(void **state)
{
    (void)state;
    each_backend_version(run_names);
}

int main(void)
{
    th_sigpipe_default();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_sized),
        cmocka_unit_test(test_options_older_caller),
        cmocka_unit_test(test_options_newer_caller),
        cmocka_unit_test(test_stats_sized),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_info_during_close),
        cmocka_unit_test(test_keylog),
        cmocka_unit_test(test_keylog_not_from_env),
        cmocka_unit_test(test_peer_chain),
        cmocka_unit_test(test_verify_hook),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests_name("tls_api", tests, NULL, NULL);
}
