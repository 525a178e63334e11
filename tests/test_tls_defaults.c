/* The strict TLS defaults of ssock/tls.h, proved with real clients, and the
 * configuration errors no other program covers (issue 9).
 *
 * Strict defaults ("TLS 1.2+, ECDHE with AES-GCM or ChaCha20-Poly1305 only,
 * no renegotiation, no compression, no session cache or tickets"), on each
 * built backend, with `openssl s_client` and `gnutls-cli` as the peers:
 *   TLS 1.0 and 1.1 offered (the client's own security level lowered so it
 *   really offers them) -> refused; AES128-SHA (CBC, RSA key exchange),
 *   kRSA, ECDHE-RSA-AES128-SHA256 (CBC with forward secrecy) and a
 *   gnutls-cli priority with every AEAD removed -> refused; a session saved
 *   and offered again -> "New", never "Reused", and no ticket; renegotiation
 *   ("R" on s_client's stdin) -> refused (one handshake only); compression
 *   offered (-comp) -> "Compression: NONE". "Refused" means: accept() never
 *   returns a socket, the failure is counted in handshakes_failed, and the
 *   client prints "Cipher is (NONE)" / "Handshake failed".
 *
 * Configuration: a file over 16 MiB -> SSOCK_EFILE; an encrypted key ->
 * SSOCK_ECERTPARSE; a 1024-bit RSA key -> SSOCK_ETLSCONFIG on OpenSSL
 * (security level 2); an expired intermediate in the server chain ->
 * SSOCK_ECERTTIME; the options are copied, not retained (every buffer is
 * overwritten and freed before the server is used).
 *
 * Missing clients or backends are skips with a reason (SKIP: lines), which
 * fail when SSOCK_GATE=1. */
#include "helpers.h"
#include "tls_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ssock/tls.h"

#ifndef SSOCK_CERTS_DIR
#error "SSOCK_CERTS_DIR must name the certs/ directory"
#endif
#define CERT(f) SSOCK_CERTS_DIR "/" f
#ifndef SSOCK_OPENSSL_BIN
#define SSOCK_OPENSSL_BIN ""
#endif
#ifndef SSOCK_GNUTLS_CLI
#define SSOCK_GNUTLS_CLI ""
#endif

#define LONG_MS 10000

static int g_be[2];
static int g_nbe;
static int g_missing[2];
static int g_nmissing;
static char g_tmp[64]; /* a private temporary directory */

static int group_setup(void **state)
{
    static const int all[] = {SSOCK_TLS_BACKEND_MBEDTLS,
                              SSOCK_TLS_BACKEND_OPENSSL};
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        if (ssock_tls_backend_available(all[i]))
            g_be[g_nbe++] = all[i];
        else
            g_missing[g_nmissing++] = all[i];
    }
    snprintf(g_tmp, sizeof g_tmp, "/tmp/ssock-tls-defaults.XXXXXX");
    if (mkdtemp(g_tmp) == NULL)
        return -1;
    return 0;
}

static void rm_tmp(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", g_tmp, name);
    (void)unlink(path);
}

static int group_teardown(void **state)
{
    static const char *const files[] = {"big.pem",  "enc.key",   "weak.pem",
                                        "weak.key", "chain.pem", "leaf.key",
                                        "sess.pem", "sess13.pem"};
    (void)state;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        rm_tmp(files[i]);
    (void)rmdir(g_tmp);
    return 0;
}

static void tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", g_tmp, name);
}

static void each_backend(void (*fn)(int backend))
{
    for (int i = 0; i < g_nmissing; i++)
        if (th_skip_check("backend %s not built: its runs are skipped",
                          ssock_tls_backend_name(g_missing[i])))
            fail_msg("SSOCK_GATE=1: every TLS backend must be built");
    if (g_nbe == 0)
        TH_SKIP("no TLS backend built");
    for (int i = 0; i < g_nbe; i++) {
        print_message("[ backend  ] %s\n", ssock_tls_backend_name(g_be[i]));
        fn(g_be[i]);
    }
}

static int have_binary(const char *path, const char *what)
{
    if (path[0] == '\0' || access(path, X_OK) != 0) {
        if (th_skip_check("%s not found (%s): its cases are skipped", what,
                          path[0] ? path : "not found at configure time"))
            fail_msg("SSOCK_GATE=1: %s must be installed", what);
        return 0;
    }
    return 1;
}

/* ---- a TLS server with the defaults ------------------------------------ */

static ssock_server *open_srv(int backend, int rsa, int accept_ms)
{
    ssock_tls_options t;
    ssock_tls_config *cfg = NULL;
    ssock_server_options o;
    ssock_server *srv = NULL;
    char err[SSOCK_TLS_ERRBUF_SIZE];
    int rc;

    ssock_tls_options_init(&t); /* the defaults under test */
    t.backend = backend;
    t.cert_file = rsa ? CERT("server-rsa.pem") : CERT("server-ecdsa.pem");
    t.key_file = rsa ? CERT("server-rsa.key") : CERT("server-ecdsa.key");
    rc = ssock_tls_config_new(&cfg, &t, err, sizeof err);
    if (rc != 0)
        fail_msg("ssock_tls_config_new: %s: %s", ssock_err_name(rc), err);
    ssock_server_options_init(&o);
    o.addr = "127.0.0.1";
    o.accept_timeout_ms = accept_ms;
    o.tls = cfg;
    rc = ssock_server_open(&srv, &o);
    ssock_tls_config_free(cfg);
    if (rc != 0)
        fail_msg("ssock_server_open: %s", ssock_err_name(rc));
    return srv;
}

static ssock_tls_stats stats_of(const ssock_server *srv)
{
    ssock_tls_stats st;
    assert_int_equal(ssock_server_tls_stats(srv, &st), 0);
    return st;
}

/* ---- a spawned client: stdin a socket we write, stdout+stderr one pipe -- */

typedef struct proc {
    pid_t pid;
    int in, out;
    char buf[65536];
    size_t len;
} proc;

static proc g_proc = {.pid = -1, .in = -1, .out = -1};

static void proc_close(proc *p)
{
    if (p->in >= 0)
        close(p->in);
    if (p->out >= 0)
        close(p->out);
    p->in = p->out = -1;
}

static int teardown_proc(void **state)
{
    (void)state;
    if (g_proc.pid > 0) {
        kill(g_proc.pid, SIGKILL);
        (void)waitpid(g_proc.pid, NULL, 0);
        g_proc.pid = -1;
    }
    proc_close(&g_proc);
    return 0;
}

static void proc_spawn(proc *p, char *const argv[])
{
    int sv[2], po[2];
    p->len = 0;
    p->buf[0] = '\0';
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(pipe2(po, O_CLOEXEC), 0);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        if (dup2(sv[1], 0) < 0 || dup2(po[1], 1) < 0 || dup2(po[1], 2) < 0)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    close(sv[1]);
    close(po[1]);
    p->in = sv[0];
    p->out = po[0];
}

/* Read output for up to timeout_ms, or until `needle` (if not NULL) shows
 * up, or end of output. 1 when the needle was found. */
static int proc_read(proc *p, const char *needle, int timeout_ms)
{
    int64_t end = th_now_ms() + timeout_ms;
    for (;;) {
        struct pollfd pfd = {.fd = p->out, .events = POLLIN, .revents = 0};
        int64_t left = end - th_now_ms();
        ssize_t n;
        int rc;
        if (needle != NULL && strstr(p->buf, needle) != NULL)
            return 1;
        if (left <= 0 || p->len + 1 >= sizeof p->buf || p->out < 0)
            return 0;
        rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return 0;
        n = read(p->out, p->buf + p->len, sizeof p->buf - 1 - p->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        p->len += (size_t)n;
        p->buf[p->len] = '\0';
    }
}

static void proc_say(proc *p, const char *text)
{
    size_t len = strlen(text);
    assert_int_equal(send(p->in, text, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Close its stdin, collect the rest of its output, wait for it (killed
 * after timeout_ms). The wait status, or -1 if it had to be killed. */
static int proc_finish(proc *p, int timeout_ms)
{
    int64_t end = th_now_ms() + timeout_ms;
    int status = 0;
    if (p->in >= 0)
        close(p->in);
    p->in = -1;
    (void)proc_read(p, NULL, timeout_ms);
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid)
            break;
        if (th_now_ms() > end) {
            kill(p->pid, SIGKILL);
            (void)waitpid(p->pid, NULL, 0);
            status = -1;
            break;
        }
        th_sleep_ms(5);
    }
    p->pid = -1;
    proc_close(p);
    return status;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *s = strstr(hay, needle); s; s = strstr(s + 1, needle))
        n++;
    return n;
}

/* ---- refused offers --------------------------------------------------- */

/* The client runs; accept() must never return a socket, and exactly one
 * handshake must be counted as failed. Each accept() waits 200 ms. */
static void expect_refused(ssock_server *srv, proc *p, const char *what,
                           const char *client_says)
{
    int64_t end = th_now_ms() + LONG_MS;
    ssock_tls_stats st;
    int status;

    for (;;) {
        ssock_socket *sock = NULL;
        int rc = ssock_server_accept(srv, &sock);
        if (rc == 0) {
            char v[32], c[96];
            snprintf(v, sizeof v, "%s", ssock_socket_tls_version(sock));
            snprintf(c, sizeof c, "%s", ssock_socket_tls_cipher(sock));
            ssock_socket_free(sock);
            fail_msg("%s: accepted (%s, %s); the defaults must refuse it", what,
                     v, c);
        }
        assert_int_equal(rc, SSOCK_ETIMEOUT);
        st = stats_of(srv);
        if (st.handshakes_failed >= 1 || th_now_ms() > end)
            break;
    }
    status = proc_finish(p, LONG_MS);
    print_message("    %s: server says \"%s\"\n", what,
                  ssock_server_tls_last_error(srv));
    if (st.handshakes_failed != 1)
        fail_msg("%s: handshakes_failed %llu, want 1 (client output: %s)", what,
                 (unsigned long long)st.handshakes_failed, p->buf);
    assert_int_equal(st.handshakes_ok, 0);
    assert_int_not_equal(status, -1);
    if (strstr(p->buf, client_says) == NULL)
        fail_msg("%s: the client does not say \"%s\": %s", what, client_says,
                 p->buf);
}

static void s_client_refused(int backend, int rsa, const char *what,
                             const char *a1, const char *a2, const char *a3)
{
    char connect[64];
    ssock_server *srv = open_srv(backend, rsa, 200);
    snprintf(connect, sizeof connect, "127.0.0.1:%d",
             ssock_server_local_port(srv));
    char *argv[] = {(char *)SSOCK_OPENSSL_BIN,
                    "s_client",
                    "-connect",
                    connect,
                    "-servername",
                    "localhost",
                    (char *)a1,
                    (char *)a2,
                    (char *)a3,
                    NULL};
    print_message("    s_client %s %s %s (%s certificate)\n", a1, a2 ? a2 : "",
                  a3 ? a3 : "", rsa ? "RSA" : "ECDSA");
    proc_spawn(&g_proc, argv);
    expect_refused(srv, &g_proc, what, "Cipher is (NONE)");
    ssock_server_free(srv);
}

static void run_old_versions(int backend)
{
    /* The client's own security level is lowered so it really offers
     * TLS 1.0 / 1.1 (OpenSSL 3 would not otherwise). */
    s_client_refused(backend, 1, "TLS 1.0", "-tls1", "-cipher",
                     "DEFAULT:@SECLEVEL=0");
    s_client_refused(backend, 1, "TLS 1.1", "-tls1_1", "-cipher",
                     "DEFAULT:@SECLEVEL=0");
    s_client_refused(backend, 0, "TLS 1.0 (ECDSA)", "-tls1", "-cipher",
                     "DEFAULT:@SECLEVEL=0");
}

static void test_old_versions_refused(void **state)
{
    (void)state;
    if (!have_binary(SSOCK_OPENSSL_BIN, "openssl"))
        return;
    each_backend(run_old_versions);
}

static void run_weak_suites(int backend)
{
    s_client_refused(backend, 1, "AES128-SHA (CBC, RSA key exchange)",
                     "-tls1_2", "-cipher", "AES128-SHA");
    s_client_refused(backend, 1, "kRSA (no forward secrecy)", "-tls1_2",
                     "-cipher", "kRSA");
    s_client_refused(backend, 1, "ECDHE-RSA-AES128-SHA256 (CBC)", "-tls1_2",
                     "-cipher", "ECDHE-RSA-AES128-SHA256");
    s_client_refused(backend, 0, "ECDHE-ECDSA-AES128-SHA (CBC)", "-tls1_2",
                     "-cipher", "ECDHE-ECDSA-AES128-SHA");
}

static void test_weak_suites_refused(void **state)
{
    (void)state;
    if (!have_binary(SSOCK_OPENSSL_BIN, "openssl"))
        return;
    each_backend(run_weak_suites);
}

static void run_gnutls_cbc(int backend)
{
    for (int rsa = 0; rsa <= 1; rsa++) {
        char port[32];
        ssock_server *srv = open_srv(backend, rsa, 200);
        snprintf(port, sizeof port, "--port=%d", ssock_server_local_port(srv));
        char *argv[] = {
            (char *)SSOCK_GNUTLS_CLI,
            port,
            "--insecure",
            "--priority=NORMAL:-AES-128-GCM:-AES-256-GCM:-CHACHA20-POLY1305:"
            "-AES-128-CCM:-AES-256-CCM:-VERS-TLS1.3",
            "127.0.0.1",
            NULL};
        print_message("    gnutls-cli, CBC suites only (%s certificate)\n",
                      rsa ? "RSA" : "ECDSA");
        proc_spawn(&g_proc, argv);
        expect_refused(srv, &g_proc, "gnutls-cli CBC only", "Handshake failed");
        ssock_server_free(srv);
    }
}

static void test_gnutls_cbc_refused(void **state)
{
    (void)state;
    if (!have_binary(SSOCK_GNUTLS_CLI, "gnutls-cli"))
        return;
    each_backend(run_gnutls_cbc);
}

/* ---- accepted connections that must not get what they ask for ---------- */

/* Whether the backend as built offers TLS 1.3 (asked of the library). */
static int has_tls13(int backend)
{
    ssock_tls_options t;
    ssock_tls_config *cfg = NULL;
    int rc;
    ssock_tls_options_init(&t);
    t.backend = backend;
    t.cert_file = CERT("server-ecdsa.pem");
    t.key_file = CERT("server-ecdsa.key");
    t.min_version = SSOCK_TLS_VERSION_1_3;
    rc = ssock_tls_config_new(&cfg, &t, NULL, 0);
    ssock_tls_config_free(cfg);
    if (rc != 0 && rc != SSOCK_EVERSION)
        fail_msg("TLS 1.3 probe: %s", ssock_err_name(rc));
    return rc == 0;
}

/* Accept one connection (the client is running), send "hi\n", wait for
 * the client to print it; returns the socket. */
static ssock_socket *accept_and_greet(ssock_server *srv, proc *p)
{
    ssock_socket *sock = NULL;
    int rc = ssock_server_accept(srv, &sock);
    if (rc != 0)
        fail_msg("accept: %s (%s); client: %s", ssock_err_name(rc),
                 ssock_server_tls_last_error(srv), p->buf);
    assert_int_equal(ssock_socket_write(sock, "hi\n", 3, NULL), 0);
    if (!proc_read(p, "hi\n", LONG_MS))
        fail_msg("the client did not print the greeting: %s", p->buf);
    return sock;
}

static void run_no_resumption(int backend)
{
    static const char *const vers[] = {"-tls1_2", "-tls1_3"};
    for (int v = 0; v < 2; v++) {
        char connect[64], sess[128], sessarg[160];
        ssock_server *srv;
        ssock_socket *sock;
        struct stat stt;

        if (v == 1 && !has_tls13(backend))
            break; /* mbedTLS 2.28 has no TLS 1.3 */
        srv = open_srv(backend, 0, LONG_MS);
        snprintf(connect, sizeof connect, "127.0.0.1:%d",
                 ssock_server_local_port(srv));
        tmp_path(sess, sizeof sess, v ? "sess13.pem" : "sess.pem");
        (void)unlink(sess);
        char *argv1[] = {(char *)SSOCK_OPENSSL_BIN,
                         "s_client",
                         "-connect",
                         connect,
                         "-servername",
                         "localhost",
                         (char *)vers[v],
                         "-sess_out",
                         sess,
                         NULL};
        proc_spawn(&g_proc, argv1);
        sock = accept_and_greet(srv, &g_proc);
        /* Tickets (TLS 1.2 in the handshake, 1.3 after it) would have
         * arrived before the greeting. */
        assert_int_not_equal(proc_finish(&g_proc, LONG_MS), -1);
        ssock_socket_free(sock);
        if (strstr(g_proc.buf, "TLS session ticket") != NULL ||
            strstr(g_proc.buf, "Post-Handshake New Session Ticket") != NULL)
            fail_msg("%s: the server issued a session ticket: %s", vers[v],
                     g_proc.buf);
        if (stat(sess, &stt) == 0) {
            /* Offer the saved session: it must not be resumed. */
            snprintf(sessarg, sizeof sessarg, "%s", sess);
            char *argv2[] = {(char *)SSOCK_OPENSSL_BIN,
                             "s_client",
                             "-connect",
                             connect,
                             "-servername",
                             "localhost",
                             (char *)vers[v],
                             "-sess_in",
                             sessarg,
                             NULL};
            proc_spawn(&g_proc, argv2);
            sock = accept_and_greet(srv, &g_proc);
            assert_int_not_equal(proc_finish(&g_proc, LONG_MS), -1);
            ssock_socket_free(sock);
            if (strstr(g_proc.buf, "Reused,") != NULL)
                fail_msg("%s: a saved session was resumed: %s", vers[v],
                         g_proc.buf);
            if (strstr(g_proc.buf, "New,") == NULL)
                fail_msg("%s: no \"New,\" session line: %s", vers[v],
                         g_proc.buf);
            print_message("    %s: saved session offered, not resumed\n",
                          vers[v]);
        } else {
            print_message("    %s: nothing resumable was handed out\n",
                          vers[v]);
        }
        assert_int_equal(stats_of(srv).handshakes_ok, stat(sess, &stt) ? 1 : 2);
        ssock_server_free(srv);
        (void)unlink(sess);
    }
}

static void test_no_session_resumption_no_tickets(void **state)
{
    (void)state;
    if (!have_binary(SSOCK_OPENSSL_BIN, "openssl"))
        return;
    each_backend(run_no_resumption);
}

static void run_renegotiation(int backend)
{
    char connect[64], b[64];
    size_t n = 0;
    ssock_server *srv = open_srv(backend, 0, LONG_MS);
    ssock_socket *sock;
    int rc, status;

    snprintf(connect, sizeof connect, "127.0.0.1:%d",
             ssock_server_local_port(srv));
    /* No -quiet: s_client then takes "R" on stdin as "renegotiate". */
    char *argv[] = {(char *)SSOCK_OPENSSL_BIN,
                    "s_client",
                    "-connect",
                    connect,
                    "-servername",
                    "localhost",
                    "-CAfile",
                    (char *)CERT("ca.pem"),
                    "-tls1_2",
                    NULL};
    proc_spawn(&g_proc, argv);
    sock = accept_and_greet(srv, &g_proc);
    proc_say(&g_proc, "R\n");
    /* The server must read to see the renegotiation ClientHello. Refused:
     * the client gives up and the read ends (end of stream, reset or the
     * client's alert). Accepted: the read would wait for data that never
     * comes (SSOCK_ETIMEOUT). */
    assert_int_equal(ssock_socket_set_read_timeout(sock, 3000), 0);
    rc = ssock_socket_read(sock, b, sizeof b, &n);
    status = proc_finish(&g_proc, LONG_MS);
    print_message(
        "    renegotiation: server read %s (%s)\n", ssock_err_name(rc),
        ssock_socket_tls_last_error(sock) ? ssock_socket_tls_last_error(sock)
                                          : "");
    if (rc != SSOCK_EOF && rc != SSOCK_ETLS && rc != -ECONNRESET)
        fail_msg("renegotiation: server read %s (%d), want SSOCK_EOF, "
                 "SSOCK_ETLS or -ECONNRESET (client: %s)",
                 ssock_err_name(rc), rc, g_proc.buf);
    assert_int_not_equal(status, -1);
    if (strstr(g_proc.buf, "RENEGOTIATING") == NULL)
        fail_msg("the client did not try to renegotiate: %s", g_proc.buf);
    /* Each handshake prints the verified chain once. */
    if (count_of(g_proc.buf, "depth=0") != 1)
        fail_msg("renegotiation happened (%d handshakes): %s",
                 count_of(g_proc.buf, "depth=0"), g_proc.buf);
    ssock_socket_free(sock);
    assert_int_equal(stats_of(srv).handshakes_ok, 1);
    ssock_server_free(srv);
}

static void test_renegotiation_refused(void **state)
{
    (void)state;
    if (!have_binary(SSOCK_OPENSSL_BIN, "openssl"))
        return;
    each_backend(run_renegotiation);
}

static void run_compression(int backend)
{
    char connect[64];
    ssock_server *srv = open_srv(backend, 0, LONG_MS);
    ssock_socket *sock;

    snprintf(connect, sizeof connect, "127.0.0.1:%d",
             ssock_server_local_port(srv));
    char *argv[] = {(char *)SSOCK_OPENSSL_BIN,
                    "s_client",
                    "-connect",
                    connect,
                    "-servername",
                    "localhost",
                    "-tls1_2",
                    "-comp",
                    NULL};
    proc_spawn(&g_proc, argv);
    sock = accept_and_greet(srv, &g_proc);
    assert_int_not_equal(proc_finish(&g_proc, LONG_MS), -1);
    ssock_socket_free(sock);
    if (strstr(g_proc.buf, "Compression: NONE") == NULL)
        fail_msg("compression offered (-comp): want \"Compression: NONE\": %s",
                 g_proc.buf);
    ssock_server_free(srv);
}

static void test_compression_not_negotiated(void **state)
{
    (void)state;
    if (!have_binary(SSOCK_OPENSSL_BIN, "openssl"))
        return;
    each_backend(run_compression);
}

/* ---- configuration errors -------------------------------------------- */

static int config_rc(int backend, const char *cert, const char *key, char *err,
                     size_t errlen)
{
    ssock_tls_options t;
    ssock_tls_config *cfg = (ssock_tls_config *)&t; /* must become NULL */
    int rc;
    ssock_tls_options_init(&t);
    t.backend = backend;
    t.cert_file = cert;
    t.key_file = key;
    rc = ssock_tls_config_new(&cfg, &t, err, errlen);
    if (rc == 0)
        ssock_tls_config_free(cfg);
    else
        assert_null(cfg);
    return rc;
}

static void run_big_file(int backend)
{
    char path[128], err[SSOCK_TLS_ERRBUF_SIZE];
    FILE *f;
    static char line[4096];
    tmp_path(path, sizeof path, "big.pem");
    f = fopen(path, "w");
    assert_non_null(f);
    memset(line, 'A', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    /* A valid certificate first, then padding to 16 MiB + 1 byte. */
    {
        FILE *c = fopen(CERT("server-ecdsa.pem"), "r");
        char b[4096];
        size_t n;
        long total = 0;
        assert_non_null(c);
        while ((n = fread(b, 1, sizeof b, c)) > 0) {
            assert_int_equal(fwrite(b, 1, n, f), n);
            total += (long)n;
        }
        fclose(c);
        while (total <= (16L << 20)) {
            assert_int_equal(fwrite(line, 1, sizeof line, f), sizeof line);
            total += (long)sizeof line;
        }
    }
    assert_int_equal(fclose(f), 0);
    int rc =
        config_rc(backend, path, CERT("server-ecdsa.key"), err, sizeof err);
    print_message("    > 16 MiB: %s: %s\n", ssock_err_name(rc), err);
    assert_int_equal(rc, SSOCK_EFILE);
    rm_tmp("big.pem");
}

static void test_file_over_16mib(void **state)
{
    (void)state;
    each_backend(run_big_file);
}

static void run_encrypted_key(int backend)
{
    char path[128], err[SSOCK_TLS_ERRBUF_SIZE];
    FILE *in, *out;
    EVP_PKEY *k;
    tmp_path(path, sizeof path, "enc.key");
    in = fopen(CERT("server-ecdsa.key"), "r");
    assert_non_null(in);
    k = PEM_read_PrivateKey(in, NULL, NULL, NULL);
    fclose(in);
    assert_non_null(k);
    out = fopen(path, "w");
    assert_non_null(out);
    assert_int_equal(PEM_write_PrivateKey(out, k, EVP_aes_128_cbc(),
                                          (unsigned char *)"secret", 6, NULL,
                                          NULL),
                     1);
    fclose(out);
    EVP_PKEY_free(k);
    int rc =
        config_rc(backend, CERT("server-ecdsa.pem"), path, err, sizeof err);
    print_message("    encrypted key: %s: %s\n", ssock_err_name(rc), err);
    assert_int_equal(rc, SSOCK_ECERTPARSE);
    rm_tmp("enc.key");
}

static void test_encrypted_key(void **state)
{
    (void)state;
    each_backend(run_encrypted_key);
}

/* A certificate for `key` signed by (issuer, ikey) (self-signed when
 * issuer is NULL), valid from now+nb_days to now+na_days. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer,
                       EVP_PKEY *ikey, long nb_days, long na_days, int ca)
{
    X509 *x = X509_new();
    X509_NAME *name;
    static long serial = 1000;
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), nb_days * 86400L);
    X509_gmtime_adj(X509_getm_notAfter(x), na_days * 86400L);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    if (ca) {
        X509_EXTENSION *ext =
            X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "CA:TRUE");
        assert_non_null(ext);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    assert_true(X509_sign(x, issuer ? ikey : key, EVP_sha256()) > 0);
    return x;
}

static void write_pem(const char *name, X509 *c1, X509 *c2, EVP_PKEY *key)
{
    char path[128];
    FILE *f;
    tmp_path(path, sizeof path, name);
    f = fopen(path, "w");
    assert_non_null(f);
    if (c1)
        assert_int_equal(PEM_write_X509(f, c1), 1);
    if (c2)
        assert_int_equal(PEM_write_X509(f, c2), 1);
    if (key)
        assert_int_equal(
            PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

static void run_expired_intermediate(int backend)
{
    char cert[128], key[128], err[SSOCK_TLS_ERRBUF_SIZE];
    EVP_PKEY *rk = EVP_EC_gen("P-256"), *ik = EVP_EC_gen("P-256"),
             *lk = EVP_EC_gen("P-256");
    X509 *root, *inter, *leaf;
    int rc;
    assert_non_null(rk);
    assert_non_null(ik);
    assert_non_null(lk);
    root = make_cert(rk, "test root", NULL, NULL, -3650, 3650, 1);
    /* The intermediate expired yesterday; the leaf itself is valid. */
    inter = make_cert(ik, "expired intermediate", root, rk, -400, -1, 1);
    leaf = make_cert(lk, "localhost", inter, ik, -10, 300, 0);
    write_pem("chain.pem", leaf, inter, NULL);
    write_pem("leaf.key", NULL, NULL, lk);
    tmp_path(cert, sizeof cert, "chain.pem");
    tmp_path(key, sizeof key, "leaf.key");
    rc = config_rc(backend, cert, key, err, sizeof err);
    print_message("    expired intermediate: %s: %s\n", ssock_err_name(rc),
                  err);
    assert_int_equal(rc, SSOCK_ECERTTIME);
    X509_free(root);
    X509_free(inter);
    X509_free(leaf);
    EVP_PKEY_free(rk);
    EVP_PKEY_free(ik);
    EVP_PKEY_free(lk);
    rm_tmp("chain.pem");
    rm_tmp("leaf.key");
}

static void test_expired_intermediate(void **state)
{
    (void)state;
    each_backend(run_expired_intermediate);
}

static void run_weak_key(int backend)
{
    char cert[128], key[128], err[SSOCK_TLS_ERRBUF_SIZE];
    EVP_PKEY *k = EVP_RSA_gen(1024);
    X509 *c;
    int rc;
    assert_non_null(k);
    c = make_cert(k, "localhost", NULL, NULL, -1, 300, 0);
    write_pem("weak.pem", c, NULL, NULL);
    write_pem("weak.key", NULL, NULL, k);
    tmp_path(cert, sizeof cert, "weak.pem");
    tmp_path(key, sizeof key, "weak.key");
    rc = config_rc(backend, cert, key, err, sizeof err);
    print_message("    RSA-1024 key: %s: %s\n", ssock_err_name(rc), err);
    /* The header: "a certificate the backend refuses to use, e.g. a key
     * too weak for its security level" is SSOCK_ETLSCONFIG, on both
     * backends (mbedTLS applies OpenSSL's level-2 floor: RSA >= 2048). */
    assert_int_equal(rc, SSOCK_ETLSCONFIG);
    X509_free(c);
    EVP_PKEY_free(k);
    rm_tmp("weak.pem");
    rm_tmp("weak.key");
}

static void test_weak_key(void **state)
{
    (void)state;
    each_backend(run_weak_key);
}

/* The options and everything they point to are copied: overwrite and free
 * them all before the server is even opened, then handshake and check the
 * ALPN choice and the certificate. */
static void run_options_copied(int backend)
{
    ssock_tls_options *t = calloc(1, sizeof *t);
    char *certp = strdup(CERT("server-ecdsa.pem"));
    char *h2 = strdup("h2"), *h11 = strdup("http/1.1");
    const char **alpn = calloc(2, sizeof *alpn);
    char err[SSOCK_TLS_ERRBUF_SIZE];
    ssock_tls_config *cfg = NULL;
    ssock_server_options o;
    ssock_server *srv = NULL;
    ssock_socket *sock = NULL;
    FILE *kf;
    char *keymem;
    long keylen;
    tc_opts co;
    tc_conn c;
    char alpn_buf[32];
    int rc;

    assert_non_null(t);
    kf = fopen(CERT("server-ecdsa.key"), "r");
    assert_non_null(kf);
    fseek(kf, 0, SEEK_END);
    keylen = ftell(kf);
    rewind(kf);
    keymem = malloc((size_t)keylen);
    assert_int_equal(fread(keymem, 1, (size_t)keylen, kf), (size_t)keylen);
    fclose(kf);

    ssock_tls_options_init(t);
    t->backend = backend;
    t->cert_file = certp;
    t->key_mem = keymem;
    t->key_len = (size_t)keylen;
    alpn[0] = h2;
    alpn[1] = h11;
    t->alpn = alpn;
    t->alpn_count = 2;
    rc = ssock_tls_config_new(&cfg, t, err, sizeof err);
    if (rc != 0)
        fail_msg("config: %s: %s", ssock_err_name(rc), err);
    /* Wreck and free everything the options pointed to. */
    memset(certp, 'x', strlen(certp));
    memset(keymem, 0, (size_t)keylen);
    memcpy(h2, "zz", 2);
    memset(h11, 'q', strlen(h11));
    alpn[0] = alpn[1] = "nope";
    memset(t, 0xA5, sizeof *t);
    free(certp);
    free(keymem);
    free(h2);
    free(h11);
    free(alpn);
    free(t);

    ssock_server_options_init(&o);
    o.addr = "127.0.0.1";
    o.accept_timeout_ms = 20; /* stepped in turn with the client below */
    o.tls = cfg;
    assert_int_equal(ssock_server_open(&srv, &o), 0);
    ssock_tls_config_free(cfg);
    tc_opts_init(&co);
    co.ca_file = CERT("ca.pem");
    co.verify_host = "localhost";
    co.sni = "localhost";
    co.alpn = "http/1.1,h2";
    assert_int_equal(tc_open(&c, ssock_server_local_port(srv), &co, LONG_MS),
                     TC_OK);
    /* The handshake needs accept() running: step both in turn. */
    {
        int64_t end = th_now_ms() + LONG_MS;
        int crc = TC_WANT;
        while (crc == TC_WANT && th_now_ms() < end) {
            crc = tc_step(&c);
            if (sock == NULL) {
                rc = ssock_server_accept(srv, &sock);
                (void)rc;
            }
        }
        if (crc != TC_OK)
            fail_msg("client handshake: %d %s (server: %s)", crc, c.err,
                     ssock_server_tls_last_error(srv));
        while (sock == NULL && th_now_ms() < end) {
            rc = ssock_server_accept(srv, &sock);
            if (rc != 0 && rc != SSOCK_ETIMEOUT)
                fail_msg("accept: %s", ssock_err_name(rc));
        }
    }
    assert_non_null(sock);
    assert_string_equal(tc_alpn(&c, alpn_buf, sizeof alpn_buf), "h2");
    assert_string_equal(ssock_socket_tls_alpn(sock), "h2");
    tc_close(&c);
    ssock_socket_free(sock);
    ssock_server_free(srv);
}

static void test_options_copied_not_retained(void **state)
{
    (void)state;
    each_backend(run_options_copied);
}

int main(void)
{
#define T(fn) cmocka_unit_test_teardown(fn, teardown_proc)
    const struct CMUnitTest tests[] = {
        T(test_old_versions_refused),
        T(test_weak_suites_refused),
        T(test_gnutls_cbc_refused),
        T(test_no_session_resumption_no_tickets),
        T(test_renegotiation_refused),
        T(test_compression_not_negotiated),
        T(test_file_over_16mib),
        T(test_encrypted_key),
        T(test_expired_intermediate),
        T(test_weak_key),
        T(test_options_copied_not_retained),
    };
#undef T
    th_sigpipe_default();
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
