/*
 * Lifecycle: the input is a program of operations on up to two servers,
 * their accepted sockets and raw loopback clients, run with faults injected
 * through a private system-call table (struct ssock__sys). After every step
 * the documented rules are checked, and any violation aborts:
 *
 *  - a failed open leaves no descriptor behind and returns the injected
 *    error; argument errors come before any system call;
 *  - accept gives a socket exactly when it returns 0, SSOCK_ECLOSED after
 *    the server was closed, SSOCK_ETIMEOUT only once the timeout has passed,
 *    and an -errno only when a fault was injected;
 *  - read never reports more bytes than asked, at least one on success and
 *    none on failure; the bytes are the client's, in order (both directions
 *    carry a per-connection pattern, so lost, duplicated or reordered bytes
 *    are seen, also across injected short transfers);
 *  - write reports all bytes on success, never more than asked;
 *  - after a server close its sockets fail every read, write and shutdown
 *    with SSOCK_ESERVERCLOSED (SSOCK_ECLOSED once closed themselves); a
 *    second close gives SSOCK_ECLOSED; accessors still answer after close;
 *  - with a close running on a second thread (server or socket), the other
 *    call ends either as if before the close or with the close's code, and
 *    exactly one of two racing closes succeeds. The input decides when that
 *    close starts: after a sleep, or (through the seam) exactly when the
 *    main thread's call reaches its Nth system call, the main thread then
 *    waiting (input's choice) not at all, until the close has started, or
 *    until it has returned; and it may make the main thread free the handle
 *    as soon as one of its calls returned SSOCK_ECLOSED, while the close on
 *    the second thread may still be running (see "Time" below);
 *  - at the end (everything freed, clients closed) the process has as many
 *    descriptors as before the input; leaks are LeakSanitizer's and
 *    Valgrind's to find.
 *
 * A server may also be a TLS server (see "TLS servers" below): its raw
 * clients never finish a handshake, so it must never return a socket, and
 * its handshake counters must add up after every step.
 *
 * Timeouts are 1..20 ms (mostly 1), never SSOCK_WAIT_FOREVER, and an input
 * runs at most MAX_STEPS operations, so each input is fast.
 */
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"
#include "internal.h"
#if SSOCK_HAVE_TLS
#include "ssock/tls.h"
#endif

#define MAX_STEPS 32
#define N_SRV 2
#define N_SOCK 6
#define N_CLI 6
#define BIG_UNIT 32768

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            violation(__LINE__, #cond);                                        \
    } while (0)

/* SSOCK_FUZZ_TRACE=1 in the environment prints every step and result. */
static int tracing = -1;
static int step_no;

#define TRACE(...)                                                             \
    do {                                                                       \
        if (tracing)                                                           \
            fprintf(stderr, __VA_ARGS__);                                      \
    } while (0)

static void violation(int line, const char *what)
{
    fprintf(stderr, "fuzz_lifecycle: step %d, line %d: rule violated: %s\n",
            step_no, line, what);
    abort();
}

static int is_errno(int rc)
{
    return rc < 0 && rc > -1000; /* SSOCK_E* codes are <= -1000 */
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL)
        return -1;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Byte `i` of a connection's stream; `seed` is the client's port, plus
 * 65536 for the server-to-client direction. */
static uint8_t pattern(uint32_t seed, uint64_t i)
{
    uint32_t x =
        (uint32_t)i * 2654435761u ^ seed * 40503u ^ (uint32_t)(i >> 32) * 97u;
    return (uint8_t)(x >> 24 ^ x >> 8);
}

/* ------------------------------------------------------------------ */
/* Fault injection                                                     */
/* ------------------------------------------------------------------ */

enum call {
    C_SOCKET,
    C_BIND,
    C_LISTEN,
    C_ACCEPT,
    C_POLL,
    C_RECV,
    C_SEND,
    C_SHUTDOWN,
    C_CLOSE,
    N_CALLS
};

enum kind {
    K_ERR,   /* fail with `err`, do nothing */
    K_AFTER, /* do the call, then report `err` (close: EINTR, EIO) */
    K_SHORT, /* recv/send: move fewer bytes than asked */
    K_DROP,  /* accept4: take the connection, drop it, ECONNABORTED */
    K_ZERO,  /* poll: return 0 (nothing ready) at once */
};

struct fault_def {
    unsigned char kind;
    int err;
};

#define NDEF 9
static const struct fault_def fault_defs[N_CALLS][NDEF] = {
    [C_SOCKET] = {{K_ERR, EMFILE},
                  {K_ERR, ENFILE},
                  {K_ERR, EAFNOSUPPORT},
                  {K_ERR, ENOBUFS}},
    [C_BIND] = {{K_ERR, EADDRINUSE}, {K_ERR, EACCES}, {K_ERR, EADDRNOTAVAIL}},
    [C_LISTEN] = {{K_ERR, EADDRINUSE}, {K_ERR, ENOBUFS}},
    [C_ACCEPT] = {{K_ERR, EINTR},
                  {K_ERR, EAGAIN},
                  {K_DROP, ECONNABORTED},
                  {K_ERR, EMFILE},
                  {K_ERR, ENFILE},
                  {K_ERR, EPROTO},
                  {K_ERR, ENOBUFS},
                  {K_ERR, EPERM},
                  {K_ERR, ENOMEM}},
    [C_POLL] = {{K_ERR, EINTR}, {K_ERR, EAGAIN}, {K_ZERO, 0}, {K_ERR, ENOMEM}},
    [C_RECV] = {{K_ERR, EINTR},
                {K_ERR, EAGAIN},
                {K_SHORT, 0},
                {K_ERR, ECONNRESET},
                {K_ERR, ETIMEDOUT}},
    [C_SEND] = {{K_ERR, EINTR},
                {K_ERR, EAGAIN},
                {K_SHORT, 0},
                {K_ERR, ECONNRESET},
                {K_ERR, EPIPE}},
    [C_SHUTDOWN] = {{K_ERR, ENOTCONN}, {K_ERR, ENOBUFS}},
    [C_CLOSE] = {{K_AFTER, EINTR}, {K_AFTER, EIO}},
};
static const int fault_ndefs[N_CALLS] = {4, 3, 2, 9, 4, 5, 5, 2, 2};

#define QLEN 4
struct fault {
    const struct fault_def *def;
    int skip;  /* calls to let through before this one fires */
    int param; /* K_SHORT: at most this many bytes */
};

static struct {
    pthread_mutex_t lock;
    struct fault q[N_CALLS][QLEN];
    int n[N_CALLS];
    unsigned long fired; /* faults that took effect, this input */
} faults = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void faults_reset(void)
{
    pthread_mutex_lock(&faults.lock);
    memset(faults.n, 0, sizeof(faults.n));
    faults.fired = 0;
    pthread_mutex_unlock(&faults.lock);
}

static unsigned long faults_fired(void)
{
    pthread_mutex_lock(&faults.lock);
    unsigned long n = faults.fired;
    pthread_mutex_unlock(&faults.lock);
    return n;
}

/*
 * An -errno from socket I/O. Never one that means the library used a
 * descriptor it no longer owns. Without an injected fault, only what a
 * peer can cause on loopback (a reset, a write after shutdown).
 */
static void check_io_errno(ssock_socket *h, int rc, unsigned long fired_before)
{
    CHECK(is_errno(rc));
    CHECK(ssock_socket_last_os_error(h) == -rc);
    CHECK(rc != -EBADF && rc != -ENOTSOCK && rc != -EFAULT && rc != -EINVAL);
    if (faults_fired() == fired_before)
        CHECK(rc == -ECONNRESET || rc == -EPIPE || rc == -ENOTCONN);
}

static void fault_arm(enum call c, int def, int skip, int param)
{
    pthread_mutex_lock(&faults.lock);
    if (faults.n[c] < QLEN) {
        struct fault *f = &faults.q[c][faults.n[c]++];
        f->def = &fault_defs[c][def % fault_ndefs[c]];
        f->skip = skip;
        f->param = param;
    }
    pthread_mutex_unlock(&faults.lock);
}

/* The fault for this call of `c`, if one fires now. */
static int fault_take(enum call c, struct fault *out)
{
    int fire = 0;
    pthread_mutex_lock(&faults.lock);
    if (faults.n[c] > 0) {
        struct fault *f = &faults.q[c][0];
        if (f->skip > 0) {
            f->skip--;
        } else {
            *out = *f;
            memmove(&faults.q[c][0], &faults.q[c][1],
                    (size_t)(faults.n[c] - 1) * sizeof(*f));
            faults.n[c]--;
            faults.fired++;
            fire = 1;
            TRACE("[%d] fault: call %d, error %d\n", step_no, (int)c,
                  out->def->err);
        }
    }
    pthread_mutex_unlock(&faults.lock);
    return fire;
}

/*
 * Time, through the seam. An async op (op_async) may ask for its close to
 * start exactly when the main thread reaches its Nth system call through
 * the table (or, if the main thread's op makes fewer, when that op
 * returns). The main thread's call then waits, as the input says, not at
 * all, until the second thread has started its close, or until that close
 * returned (bounded: SEAM_WAIT_MS, since a server close waits for accept to
 * leave). A fixed interleaving per input, not a sleep.
 */
#define SEAM_WAIT_MS 20
enum { W_NONE, W_STARTED, W_DONE };

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    int armed;   /* counting the main thread's calls */
    int left;    /* calls until it fires */
    int fired;   /* the second thread may go */
    int started; /* ...and has called close */
    int done;    /* ...and that close returned */
    int wait;    /* W_* */
    pthread_t main_th;
} seam = {.lock = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void seam_arm(int n, int wait)
{
    pthread_mutex_lock(&seam.lock);
    seam.armed = 1;
    seam.left = n;
    seam.fired = seam.started = seam.done = 0;
    seam.wait = wait;
    seam.main_th = pthread_self();
    pthread_mutex_unlock(&seam.lock);
}

static void seam_deadline(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_nsec += (long)ms * 1000000L;
    while (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Fire (with the lock held), then wait as the input said. */
static void seam_fire_locked(void)
{
    struct timespec until;
    seam.armed = 0;
    seam.fired = 1;
    pthread_cond_broadcast(&seam.cv);
    seam_deadline(&until, SEAM_WAIT_MS);
    while ((seam.wait == W_STARTED && !seam.started) ||
           (seam.wait == W_DONE && !seam.done)) {
        if (pthread_cond_timedwait(&seam.cv, &seam.lock, &until) != 0)
            break;
    }
}

/* Every call through the table: the main thread's Nth fires. */
static void seam_tick(void)
{
    pthread_mutex_lock(&seam.lock);
    if (seam.armed && pthread_equal(pthread_self(), seam.main_th) &&
        --seam.left <= 0) {
        TRACE("[%d] seam: the second thread goes now\n", step_no);
        seam_fire_locked();
    }
    pthread_mutex_unlock(&seam.lock);
}

/* The main thread's op returned: fire if it has not yet. */
static void seam_flush(void)
{
    pthread_mutex_lock(&seam.lock);
    if (seam.armed)
        seam_fire_locked();
    pthread_mutex_unlock(&seam.lock);
}

/* The second thread: wait for the signal (bounded), say "started". */
static void seam_wait_go(void)
{
    struct timespec until;
    pthread_mutex_lock(&seam.lock);
    seam_deadline(&until, 2000);
    while (!seam.fired) {
        if (pthread_cond_timedwait(&seam.cv, &seam.lock, &until) != 0)
            break;
    }
    seam.started = 1;
    pthread_cond_broadcast(&seam.cv);
    pthread_mutex_unlock(&seam.lock);
}

static void seam_done(void)
{
    pthread_mutex_lock(&seam.lock);
    seam.done = 1;
    pthread_cond_broadcast(&seam.cv);
    pthread_mutex_unlock(&seam.lock);
}

static int fail_with(int err)
{
    errno = err;
    return -1;
}

static int f_socket(int domain, int type, int protocol)
{
    struct fault f;
    seam_tick();
    if (fault_take(C_SOCKET, &f))
        return fail_with(f.def->err);
    return socket(domain, type, protocol);
}

static int f_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    struct fault f;
    seam_tick();
    if (fault_take(C_BIND, &f))
        return fail_with(f.def->err);
    return bind(fd, sa, len);
}

static int f_listen(int fd, int backlog)
{
    struct fault f;
    seam_tick();
    if (fault_take(C_LISTEN, &f))
        return fail_with(f.def->err);
    return listen(fd, backlog);
}

static int f_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    struct fault f;
    seam_tick();
    if (fault_take(C_ACCEPT, &f)) {
        if (f.def->kind != K_DROP)
            return fail_with(f.def->err);
        /* The client vanished between poll and accept. */
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            return -1;
        close(c);
        return fail_with(ECONNABORTED);
    }
    return accept4(fd, sa, len, flags);
}

static int f_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    struct fault f;
    seam_tick();
    if (fault_take(C_POLL, &f)) {
        if (f.def->kind == K_ZERO)
            return 0;
        return fail_with(f.def->err);
    }
    return poll(fds, n, timeout_ms);
}

static ssize_t f_recv(int fd, void *buf, size_t len, int flags)
{
    struct fault f;
    seam_tick();
    if (fault_take(C_RECV, &f)) {
        if (f.def->kind != K_SHORT)
            return fail_with(f.def->err);
        if (len > (size_t)f.param)
            len = (size_t)f.param;
    }
    return recv(fd, buf, len, flags);
}

static ssize_t f_send(int fd, const void *buf, size_t len, int flags)
{
    struct fault f;
    seam_tick();
    if (fault_take(C_SEND, &f)) {
        if (f.def->kind != K_SHORT)
            return fail_with(f.def->err);
        if (len > (size_t)f.param)
            len = (size_t)f.param;
    }
    return send(fd, buf, len, flags);
}

static int f_shutdown(int fd, int how)
{
    struct fault f;
    seam_tick();
    if (fault_take(C_SHUTDOWN, &f))
        return fail_with(f.def->err);
    return shutdown(fd, how);
}

static int f_close(int fd)
{
    struct fault f;
    seam_tick();
    int rc = close(fd);
    /* Linux releases the descriptor even when close reports an error. */
    if (fault_take(C_CLOSE, &f) && rc == 0)
        return fail_with(f.def->err);
    return rc;
}

static const struct ssock__sys fault_sys = {
    .socket = f_socket,
    .bind = f_bind,
    .listen = f_listen,
    .accept4 = f_accept4,
    .poll = f_poll,
    .recv = f_recv,
    .send = f_send,
    .shutdown = f_shutdown,
    .close = f_close,
};

/* ------------------------------------------------------------------ */
/* TLS servers                                                         */
/* ------------------------------------------------------------------ */

/*
 * A server can also be a TLS server (one fixture config per backend, built
 * on the first input and kept for the process: 8 ms handshake deadline, at
 * most 2 handshakes in flight). Its clients are the same raw sockets: they
 * send the pattern, nothing, or the ClientHello below, so no handshake ever
 * finishes, and the acceptor's bookkeeping (pending set, deadlines, the cap,
 * failures, close with handshakes pending) is what gets exercised. Rules:
 * accept never returns a socket whose handshake did not finish, and the
 * counters always add up.
 */
#if SSOCK_HAVE_TLS
static ssock_tls_config *tls_cfg[3]; /* by ssock_tls_backend_id */

static void tls_fixtures(void)
{
    static int done;
    const int ids[2] = {SSOCK_TLS_BACKEND_MBEDTLS, SSOCK_TLS_BACKEND_OPENSSL};
    if (done)
        return;
    done = 1;
    for (int i = 0; i < 2; i++) {
        ssock_tls_options o;
        char err[SSOCK_TLS_ERRBUF_SIZE];
        if (!ssock_tls_backend_available(ids[i]))
            continue;
        ssock_tls_options_init(&o);
        o.backend = ids[i];
        o.cert_file = SSOCK_FUZZ_CERTS_DIR "/server-ecdsa.pem";
        o.key_file = SSOCK_FUZZ_CERTS_DIR "/server-ecdsa.key";
        o.handshake_timeout_ms = 8;
        o.max_handshakes = 2;
        int rc = ssock_tls_config_new(&tls_cfg[ids[i]], &o, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "fuzz_lifecycle: TLS fixture: %s: %s\n",
                    ssock_err_name(rc), err);
            abort();
        }
    }
}

/* The config for a variant byte, or NULL for a plain server. */
static const ssock_tls_config *tls_pick(uint8_t variant)
{
    if (!(variant & 8))
        return NULL;
    int want =
        variant & 16 ? SSOCK_TLS_BACKEND_OPENSSL : SSOCK_TLS_BACKEND_MBEDTLS;
    if (tls_cfg[want] != NULL)
        return tls_cfg[want];
    return tls_cfg[SSOCK_TLS_BACKEND_OPENSSL + SSOCK_TLS_BACKEND_MBEDTLS -
                   want];
}

static void check_tls_stats(ssock_server *h, int closed)
{
    ssock_tls_stats st;
    CHECK(ssock_server_tls_stats(h, &st) == 0);
    TRACE("[%d]   tls: accepted %llu ok %llu failed %llu timed out %llu "
          "dropped %llu in flight %llu\n",
          step_no, (unsigned long long)st.accepted,
          (unsigned long long)st.handshakes_ok,
          (unsigned long long)st.handshakes_failed,
          (unsigned long long)st.handshakes_timed_out,
          (unsigned long long)st.handshakes_dropped,
          (unsigned long long)st.in_flight);
    CHECK(st.handshakes_ok + st.handshakes_failed + st.handshakes_timed_out +
              st.handshakes_dropped + st.in_flight ==
          st.accepted);
    CHECK(st.in_flight <= 2);
    if (closed)
        CHECK(st.in_flight == 0);
    CHECK(ssock_server_tls_last_error(h) != NULL);
}
#else
static void tls_fixtures(void)
{
}

static const ssock_tls_config *tls_pick(uint8_t variant)
{
    (void)variant;
    return NULL;
}

static void check_tls_stats(ssock_server *h, int closed)
{
    (void)h;
    (void)closed;
}
#endif

/* A minimal TLS 1.2 ClientHello (ECDHE-ECDSA/RSA-AES128-GCM, X25519 and
 * P-256, ECDSA and PSS signatures) that both backends answer. */
static const uint8_t client_hello[] = {
    0x16, 0x03, 0x01, 0x00, 0x54,       /* record: handshake, 84 bytes */
    0x01, 0x00, 0x00, 0x50, 0x03, 0x03, /* ClientHello, 80 bytes, TLS 1.2 */
    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,
    0,    0,    0,    0,    0,    0, /* random */
    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,
    0,    0,    0,    0,    0,    0,    /* */
    0x00,                               /* no session id */
    0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f, /* cipher suites */
    0x01, 0x00,                         /* null compression */
    0x00, 0x23,                         /* extensions: 35 bytes */
    0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17, /* groups */
    0x00, 0x0b, 0x00, 0x02, 0x01, 0x00, /* point formats */
    0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x08, 0x04, /* sigalgs */
    0xff, 0x01, 0x00, 0x01, 0x00, /* renegotiation_info */
    0x00, 0x17, 0x00, 0x00,       /* extended master secret */
};

/* ------------------------------------------------------------------ */
/* The model                                                           */
/* ------------------------------------------------------------------ */

struct srv {
    ssock_server *h; /* NULL: slot free */
    int closed;
    int tls; /* a TLS server: its clients never finish a handshake */
    int port;
    int accept_ms, read_ms, write_ms;
};

struct sock {
    ssock_socket *h; /* NULL: slot free */
    int srv;         /* slot of its server, -1 once that was freed */
    int self_closed;
    int srv_closed;
    uint32_t seed; /* the client's port */
    uint64_t got;  /* client-to-server bytes read and checked */
    uint64_t sent; /* server-to-client bytes handed to the kernel */
    int read_ms, write_ms;
    int nb; /* non-blocking mode */
};

struct cli {
    int fd; /* -1: slot free */
    uint32_t seed;
    uint64_t sent;
    uint64_t got;
    int dead; /* end of stream or error seen: stop checking */
    int tls;  /* connected to a TLS server */
};

/* A close running on a second thread while the main thread runs one op. */
enum { A_NONE, A_SRV, A_SOCK };
struct async {
    int kind;
    int idx;
    int was_open; /* the handle was open when the thread started */
    int main_ok;  /* the main thread's own close of it returned 0 */
    int delay_us;
    int at_call; /* > 0: start at the main thread's Nth system call */
    int rc;
    pthread_t th;
    void *h;
};

static struct {
    const uint8_t *p;
    size_t left;
    struct srv srv[N_SRV];
    struct sock sock[N_SOCK];
    struct cli cli[N_CLI];
    struct async as;
} R;

static uint8_t next(void)
{
    if (R.left == 0)
        return 0;
    R.left--;
    return *R.p++;
}

/* A timeout of 1..20 ms, mostly 1. Never SSOCK_WAIT_FOREVER. */
static int timeout_from(uint8_t b)
{
    if (b < 160)
        return 1;
    return b < 224 ? 2 + (b & 3) : 1 + b % 20;
}

/* A transfer size: mostly small, sometimes hundreds of KiB. */
static size_t size_from(uint8_t b, size_t min)
{
    size_t n = b < 200 ? (size_t)(b % 64) : (size_t)(b - 199) * BIG_UNIT;
    return n < min ? min : n;
}

/* Is the async thread closing server `k` (or the server of socket `i`)? */
static int async_on_srv(int k)
{
    return R.as.kind == A_SRV && R.as.idx == k && R.as.was_open;
}

static int async_on_sock(int i)
{
    return R.as.kind == A_SOCK && R.as.idx == i && R.as.was_open;
}

/* Mark server k closed in the model: its sockets now fail. */
static void model_srv_closed(int k)
{
    R.srv[k].closed = 1;
    for (int i = 0; i < N_SOCK; i++)
        if (R.sock[i].h != NULL && R.sock[i].srv == k)
            R.sock[i].srv_closed = 1;
}

/*
 * The outcome of an I/O call on socket i, before looking at success: 1 when
 * rc is the code of a closed socket or server and that is what the model
 * says (or may say, with a close racing), 0 when rc is a normal outcome
 * that the model allows; aborts otherwise.
 */
static int check_dead_rc(int i, int rc)
{
    struct sock *s = &R.sock[i];
    if (s->self_closed) {
        CHECK(rc == SSOCK_ECLOSED);
        return 1;
    }
    if (s->srv_closed) {
        /* ...unless its own close, racing, came first. */
        CHECK(rc == SSOCK_ESERVERCLOSED ||
              (rc == SSOCK_ECLOSED && async_on_sock(i)));
        return 1;
    }
    if (rc == SSOCK_ECLOSED) {
        CHECK(async_on_sock(i));
        return 1;
    }
    if (rc == SSOCK_ESERVERCLOSED) {
        CHECK(s->srv >= 0 && async_on_srv(s->srv));
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Operations                                                          */
/* ------------------------------------------------------------------ */

static void op_open(void)
{
    int k = next() % N_SRV;
    uint8_t variant = next();
    ssock_server_options o;
    ssock_server *h = (ssock_server *)&o; /* must be reset to NULL */
    int want = 0;

    if (R.srv[k].h != NULL)
        return;
    ssock_server_options_init(&o);
    o.addr = "127.0.0.1";
    o.accept_timeout_ms = timeout_from(next());
    o.read_timeout_ms = timeout_from(next());
    o.write_timeout_ms = timeout_from(next());
    o.backlog = 1 + variant % 8;
    switch (variant >> 5) {
    case 0:
        o.port = variant & 1 ? -1 : 65536;
        want = SSOCK_EBADPORT;
        break;
    case 1:
        o.backlog = -(variant & 1);
        want = SSOCK_EBADBACKLOG;
        break;
    case 2:
        if (variant & 1)
            o.read_timeout_ms = -1;
        else
            o.accept_timeout_ms = -5;
        want = SSOCK_EBADTIMEOUT;
        break;
    case 3:
        if ((variant & 3) == 0) {
            o.addr = "";
            want = SSOCK_EBADADDR;
        } else if ((variant & 3) == 1) {
            o.addr = "[::1";
            want = SSOCK_EBADADDR;
        }
        break;
    default:
        /* Valid options; bits 3 and 4 ask for a TLS server. */
        o.tls = tls_pick(variant);
        break;
    }

    /* A close on the second thread changes the descriptor count and may
     * use up faults meanwhile: count only when this thread is alone. */
    int alone = R.as.kind == A_NONE;
    int fds = count_fds();
    unsigned long fired = faults_fired();
    int rc = ssock__server_open_sys(&h, &o, &fault_sys);
    TRACE("[%d] open srv%d: %s\n", step_no, k, ssock_err_name(rc));
    if (want != 0) {
        /* Arguments are checked before any system call. */
        CHECK(rc == want);
        if (alone)
            CHECK(faults_fired() == fired);
    }
    if (rc != 0) {
        CHECK(h == NULL);
        CHECK(is_errno(rc) || rc == want);
        /* A system call failed: only because one was made to. */
        if (is_errno(rc))
            CHECK(faults_fired() != fired);
        /* A failed open leaves nothing behind. */
        if (alone)
            CHECK(count_fds() == fds);
        return;
    }
    CHECK(h != NULL);
    CHECK(ssock_server_local_port(h) > 0);
    CHECK(strcmp(ssock_server_host(h), "127.0.0.1") == 0);
    CHECK(ssock_server_accept_timeout(h) == o.accept_timeout_ms);
    CHECK(ssock_server_fd(h) >= 0);
    struct srv *s = &R.srv[k];
    s->h = h;
    s->closed = 0;
    s->tls = o.tls != NULL;
    s->port = ssock_server_local_port(h);
    s->accept_ms = o.accept_timeout_ms;
    s->read_ms = o.read_timeout_ms;
    s->write_ms = o.write_timeout_ms;
}

static void op_connect(void)
{
    int k = next() % N_SRV;
    int c = next() % N_CLI;
    uint8_t flags = next();
    if (R.srv[k].h == NULL || R.cli[c].fd >= 0)
        return;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (flags & 1) {
        /* A small window: the server's writes fill up and time out. */
        int small = 4096;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)R.srv[k].port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
        errno != EINPROGRESS) {
        close(fd);
        return;
    }
    socklen_t len = sizeof(sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        close(fd);
        return;
    }
    R.cli[c].fd = fd;
    R.cli[c].seed = ntohs(sa.sin_port);
    R.cli[c].sent = R.cli[c].got = 0;
    R.cli[c].dead = 0;
    R.cli[c].tls = R.srv[k].tls;
}

static void op_accept(void)
{
    int k = next() % N_SRV;
    struct srv *sv = &R.srv[k];
    int i;

    if (sv->h == NULL)
        return;
    for (i = 0; i < N_SOCK && R.sock[i].h != NULL; i++)
        ;
    if (i == N_SOCK)
        return;

    ssock_socket *out = (ssock_socket *)sv; /* must be reset to NULL */
    unsigned long fired = faults_fired();
    int try = next() & 1; /* the non-blocking step instead */
    uint64_t t0 = now_ns();
    int rc = try ? ssock_server_try_accept(sv->h, &out)
                 : ssock_server_accept(sv->h, &out);
    uint64_t dt = now_ns() - t0;
    TRACE("[%d] %saccept srv%d: %s\n", step_no, try ? "try_" : "", k,
          ssock_err_name(rc));
    if (try) {
        /* Never waits, never reports a timeout. */
        CHECK(rc != SSOCK_ETIMEOUT);
        if (rc == SSOCK_EAGAIN) {
            CHECK(out == NULL && !sv->closed);
            return;
        }
    } else {
        CHECK(rc != SSOCK_EAGAIN);
    }

    if (rc != 0)
        CHECK(out == NULL);
    if (sv->closed) {
        CHECK(rc == SSOCK_ECLOSED);
        return;
    }
    if (rc == SSOCK_ECLOSED) {
        CHECK(async_on_srv(k));
        return;
    }
    if (rc == SSOCK_ETIMEOUT) {
        /* No wait ends before its deadline. */
        CHECK(dt >= (uint64_t)sv->accept_ms * 1000000u);
        return;
    }
    if (rc != 0) {
        CHECK(is_errno(rc));
        CHECK(faults_fired() != fired);
        CHECK(ssock_server_last_os_error(sv->h) == -rc);
        return;
    }
    CHECK(out != NULL);
    if (sv->tls) {
        /* No client here can finish a handshake. */
        fprintf(stderr, "fuzz_lifecycle: a TLS server returned a socket "
                        "whose handshake cannot have finished\n");
        abort();
    }
    CHECK(ssock_socket_fd(out) >= 0);
    CHECK(strcmp(ssock_socket_peer_host(out), "127.0.0.1") == 0);
    CHECK(ssock_socket_peer_port(out) > 0);
    CHECK(ssock_socket_local_port(out) == sv->port);
    CHECK(ssock_socket_read_timeout(out) == sv->read_ms);
    CHECK(ssock_socket_write_timeout(out) == sv->write_ms);
    struct sock *s = &R.sock[i];
    memset(s, 0, sizeof(*s));
    s->h = out;
    s->srv = k;
    s->seed = (uint32_t)ssock_socket_peer_port(out);
    s->read_ms = sv->read_ms;
    s->write_ms = sv->write_ms;
}

static struct sock *pick_sock(int *idx)
{
    int i = next() % N_SOCK;
    *idx = i;
    return R.sock[i].h != NULL ? &R.sock[i] : NULL;
}

static void op_read(void)
{
    int i;
    struct sock *s = pick_sock(&i);
    size_t len = size_from(next(), 1);
    if (s == NULL)
        return;
    uint8_t *buf = malloc(len);
    CHECK(buf != NULL);
    size_t n = 12345;
    unsigned long fired = faults_fired();
    uint64_t t0 = now_ns();
    int rc = ssock_socket_read(s->h, buf, len, &n);
    uint64_t dt = now_ns() - t0;
    TRACE("[%d] read sock%d %zu: %s n=%zu\n", step_no, i, len,
          ssock_err_name(rc), n);

    if (rc != 0)
        CHECK(n == 0);
        /* A TLS peer that goes without close_notify: a truncation (never on
         * a plain socket). */
#if SSOCK_HAVE_TLS
    if (rc == SSOCK_ETRUNCATED)
        CHECK(ssock_socket_tls_version(s->h) != NULL);
#else
    CHECK(rc != SSOCK_ETRUNCATED);
#endif
    if (check_dead_rc(i, rc) || rc == SSOCK_EOF || rc == SSOCK_ETRUNCATED) {
        free(buf);
        return;
    }
    if (is_errno(rc)) {
        check_io_errno(s->h, rc, fired);
        free(buf);
        return;
    }
    if (rc == SSOCK_EAGAIN) {
        /* Only in non-blocking mode, and it says what to wait for. */
        CHECK(s->nb);
        CHECK(ssock_socket_want(s->h) == SSOCK_WANT_READ ||
              ssock_socket_want(s->h) == SSOCK_WANT_WRITE);
        free(buf);
        return;
    }
    if (rc == SSOCK_ETIMEOUT) {
        /* Non-blocking: the idle clock ran out; it was read_ms long. */
        CHECK(s->nb || dt >= (uint64_t)s->read_ms * 1000000u);
        CHECK(s->read_ms != SSOCK_WAIT_FOREVER);
        free(buf);
        return;
    }
    CHECK(rc == 0);
    CHECK(n >= 1 && n <= len);
    for (size_t j = 0; j < n; j++) {
        if (buf[j] != pattern(s->seed, s->got + j)) {
            fprintf(stderr,
                    "fuzz_lifecycle: read byte %llu of the stream is wrong\n",
                    (unsigned long long)(s->got + j));
            abort();
        }
    }
    s->got += n;
    free(buf);
}

static void op_write(void)
{
    int i;
    struct sock *s = pick_sock(&i);
    size_t len = size_from(next(), 0);
    if (s == NULL)
        return;
    uint8_t *buf = malloc(len ? len : 1);
    CHECK(buf != NULL);
    for (size_t j = 0; j < len; j++)
        buf[j] = pattern(s->seed + 65536u, s->sent + j);
    size_t n = 12345;
    unsigned long fired = faults_fired();
    uint64_t t0 = now_ns();
    int rc = ssock_socket_write(s->h, buf, len, &n);
    uint64_t dt = now_ns() - t0;
    TRACE("[%d] write sock%d %zu: %s n=%zu\n", step_no, i, len,
          ssock_err_name(rc), n);
    free(buf);

    CHECK(n <= len);
    if (check_dead_rc(i, rc)) {
        /* Refused at the door, or closed during the call. */
        if (s->self_closed || s->srv_closed)
            CHECK(n == 0);
        s->sent += n;
        return;
    }
    s->sent += n;
    if (rc == 0) {
        CHECK(n == len);
        return;
    }
    if (rc == SSOCK_EAGAIN) {
        /* Non-blocking: exactly the bytes taken are counted (the client
         * checks the stream), and it says what to wait for. */
        CHECK(s->nb);
        CHECK(ssock_socket_want(s->h) != 0);
        return;
    }
    if (rc == SSOCK_ETIMEOUT) {
        CHECK(s->nb || dt >= (uint64_t)s->write_ms * 1000000u);
        CHECK(s->write_ms != SSOCK_WAIT_FOREVER);
        return;
    }
    check_io_errno(s->h, rc, fired);
}

/* Switch a socket between blocking and non-blocking mode, or flush. */
static void op_nonblock(void)
{
    int i;
    struct sock *s = pick_sock(&i);
    uint8_t how = next();
    if (s == NULL)
        return;
    if (how & 1) {
        unsigned long fired = faults_fired();
        int rc = ssock_socket_flush(s->h);
        TRACE("[%d] flush sock%d: %s\n", step_no, i, ssock_err_name(rc));
        if (check_dead_rc(i, rc) || rc == 0)
            return;
        /* Plain sockets never queue anything. */
        CHECK(rc != SSOCK_EAGAIN || s->nb);
        if (rc != SSOCK_EAGAIN && rc != SSOCK_ETIMEOUT && rc != SSOCK_EBROKEN)
            check_io_errno(s->h, rc, fired);
        return;
    }
    int on = (how >> 1) & 1;
    int rc = ssock_socket_set_nonblocking(s->h, on);
    TRACE("[%d] nonblocking sock%d %d: %s\n", step_no, i, on,
          ssock_err_name(rc));
    if (check_dead_rc(i, rc))
        return;
    CHECK(rc == 0);
    s->nb = on;
    CHECK(ssock_socket_nonblocking(s->h) == on);
    CHECK(on || ssock_socket_next_timeout(s->h) == -1);
}

static void op_shutdown(void)
{
    int i;
    struct sock *s = pick_sock(&i);
    if (s == NULL)
        return;
    unsigned long fired = faults_fired();
    int rc = ssock_socket_shutdown_write(s->h);
    TRACE("[%d] shutdown sock%d: %s\n", step_no, i, ssock_err_name(rc));
    if (check_dead_rc(i, rc) || rc == 0)
        return;
    check_io_errno(s->h, rc, fired);
}

static void op_close_sock(void)
{
    int i;
    struct sock *s = pick_sock(&i);
    if (s == NULL)
        return;
    int rc = ssock_socket_close(s->h);
    TRACE("[%d] close sock%d: %s\n", step_no, i, ssock_err_name(rc));
    if (async_on_sock(i)) {
        CHECK(rc == 0 || rc == SSOCK_ECLOSED);
        if (rc == 0)
            R.as.main_ok = 1;
    } else {
        CHECK(rc == (s->self_closed ? SSOCK_ECLOSED : 0));
    }
    s->self_closed = 1;
    CHECK(ssock_socket_fd(s->h) == -1);
    CHECK(ssock_socket_close(s->h) == SSOCK_ECLOSED);
    /* Accessors still answer. */
    CHECK(ssock_socket_peer_port(s->h) == (int)s->seed);
    CHECK(strcmp(ssock_socket_peer_host(s->h), "127.0.0.1") == 0);
}

static void op_free_sock(void)
{
    int i;
    struct sock *s = pick_sock(&i);
    /* free must not race with other calls on the same handle. */
    if (s == NULL || (R.as.kind == A_SOCK && R.as.idx == i))
        return;
    ssock_socket_free(s->h);
    memset(s, 0, sizeof(*s));
}

static void op_close_srv(void)
{
    int k = next() % N_SRV;
    struct srv *sv = &R.srv[k];
    if (sv->h == NULL)
        return;
    int rc = ssock_server_close(sv->h);
    TRACE("[%d] close srv%d: %s\n", step_no, k, ssock_err_name(rc));
    if (async_on_srv(k)) {
        CHECK(rc == 0 || rc == SSOCK_ECLOSED);
        if (rc == 0)
            R.as.main_ok = 1;
    } else {
        CHECK(rc == (sv->closed ? SSOCK_ECLOSED : 0));
    }
    model_srv_closed(k);
    CHECK(ssock_server_close(sv->h) == SSOCK_ECLOSED);
    CHECK(ssock_server_fd(sv->h) == -1);
    /* Accessors still answer. */
    CHECK(ssock_server_local_port(sv->h) == sv->port);
    CHECK(strcmp(ssock_server_host(sv->h), "127.0.0.1") == 0);
    ssock_socket *out = (ssock_socket *)sv;
    CHECK(ssock_server_accept(sv->h, &out) == SSOCK_ECLOSED);
    CHECK(out == NULL);
}

static void op_free_srv(void)
{
    int k = next() % N_SRV;
    struct srv *sv = &R.srv[k];
    if (sv->h == NULL || (R.as.kind == A_SRV && R.as.idx == k))
        return;
    ssock_server_free(sv->h);
    model_srv_closed(k);
    for (int i = 0; i < N_SOCK; i++)
        if (R.sock[i].h != NULL && R.sock[i].srv == k)
            R.sock[i].srv = -1;
    memset(sv, 0, sizeof(*sv));
}

static void op_set_timeouts(void)
{
    int i;
    struct sock *s = pick_sock(&i);
    int r = timeout_from(next());
    int w = timeout_from(next());
    if (s == NULL)
        return;
    CHECK(ssock_socket_set_read_timeout(s->h, -1) == SSOCK_EBADTIMEOUT);
    CHECK(ssock_socket_set_write_timeout(s->h, -1) == SSOCK_EBADTIMEOUT);
    CHECK(ssock_socket_read_timeout(s->h) == s->read_ms);
    CHECK(ssock_socket_set_read_timeout(s->h, r) == 0);
    CHECK(ssock_socket_set_write_timeout(s->h, w) == 0);
    s->read_ms = r;
    s->write_ms = w;
    CHECK(ssock_socket_read_timeout(s->h) == r);
    CHECK(ssock_socket_write_timeout(s->h) == w);
}

static void op_cli_send(void)
{
    struct cli *c = &R.cli[next() % N_CLI];
    size_t len = size_from(next(), 1);
    if (c->fd < 0)
        return;
    uint8_t *buf = malloc(len);
    CHECK(buf != NULL);
    for (size_t j = 0; j < len; j++)
        buf[j] = pattern(c->seed, c->sent + j);
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0)
        c->sent += (uint64_t)n;
    free(buf);
}

static void op_cli_recv(void)
{
    static uint8_t buf[65536];
    struct cli *c = &R.cli[next() % N_CLI];
    if (c->fd < 0 || c->dead)
        return;
    for (int round = 0; round < 16; round++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            c->dead = 1;
            return;
        }
        /* What a TLS server sends is not our pattern. */
        for (ssize_t j = 0; j < n && !c->tls; j++) {
            if (buf[j] != pattern(c->seed + 65536u, c->got + (uint64_t)j)) {
                fprintf(stderr, "fuzz_lifecycle: client byte %llu is wrong\n",
                        (unsigned long long)(c->got + (uint64_t)j));
                abort();
            }
        }
        c->got += (uint64_t)n;
    }
}

/* The client closes, resets, shuts its write side, or sends a ClientHello. */
static void op_cli_close(void)
{
    struct cli *c = &R.cli[next() % N_CLI];
    uint8_t how = next() % 4;
    if (c->fd < 0)
        return;
    if (how == 3) {
        /* A real ClientHello, to a TLS server: its handshake then waits
         * for a second flight that never comes. */
        if (c->tls)
            (void)!send(c->fd, client_hello, sizeof(client_hello),
                        MSG_NOSIGNAL | MSG_DONTWAIT);
        return;
    }
    if (how == 2) {
        shutdown(c->fd, SHUT_WR);
        return;
    }
    if (how == 1) {
        /* A reset instead of an orderly close. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(c->fd);
    c->fd = -1;
}

static void op_fault(void)
{
    uint8_t a = next(), b = next();
    fault_arm((enum call)((a & 15) % N_CALLS), b & 15, (a >> 4) & 3,
              1 + (b >> 4));
}

/* Invalid arguments are refused without touching anything. */
static void op_misuse(void)
{
    uint8_t b = next();
    ssock_socket *out = (ssock_socket *)&b;
    size_t n = 7;
    CHECK(ssock_server_accept(NULL, &out) == SSOCK_EINVAL && out == NULL);
    CHECK(ssock_server_close(NULL) == SSOCK_EINVAL);
    CHECK(ssock_socket_close(NULL) == SSOCK_EINVAL);
    CHECK(ssock_socket_read(NULL, &b, 1, &n) == SSOCK_EINVAL && n == 0);
    CHECK(ssock_socket_write(NULL, &b, 1, NULL) == SSOCK_EINVAL);
    CHECK(ssock_socket_shutdown_write(NULL) == SSOCK_EINVAL);
    CHECK(ssock_server_open(NULL, NULL) == SSOCK_EINVAL);
    ssock_server_free(NULL);
    ssock_socket_free(NULL);

    struct srv *sv = &R.srv[b % N_SRV];
    if (sv->h != NULL)
        CHECK(ssock_server_accept(sv->h, NULL) == SSOCK_EINVAL);
    struct sock *s = &R.sock[b % N_SOCK];
    if (s->h != NULL) {
        n = 7;
        CHECK(ssock_socket_read(s->h, &b, 0, &n) == SSOCK_EINVAL && n == 0);
        CHECK(ssock_socket_read(s->h, &b, 1, NULL) == SSOCK_EINVAL);
        CHECK(ssock_socket_read(s->h, NULL, 1, &n) == SSOCK_EINVAL);
        CHECK(ssock_socket_write(s->h, NULL, 1, &n) == SSOCK_EINVAL);
    }
}

static void *async_main(void *arg)
{
    struct async *a = arg;
    if (a->at_call > 0) {
        seam_wait_go();
    } else if (a->delay_us > 0) {
        struct timespec ts = {0, (long)a->delay_us * 1000};
        nanosleep(&ts, NULL);
    }
    if (a->kind == A_SRV)
        a->rc = ssock_server_close(a->h);
    else
        a->rc = ssock_socket_close(a->h);
    if (a->at_call > 0)
        seam_done();
    return NULL;
}

static void run_op(uint8_t op);

/*
 * Free the handle the second thread is closing, from the main thread, as
 * soon as the contract allows: once a call of ours returned SSOCK_ECLOSED
 * (so that close has been called), even if it is still running. Returns 1
 * when the handle was freed (the model slot is cleared).
 */
static int free_after_eclosed(struct async *a)
{
    /* Only an ECLOSED caused by the second thread's close proves that it
     * was called: not when the handle was closed before, or by our op. */
    if (!a->was_open || a->main_ok)
        return 0;
    if (a->kind == A_SRV) {
        int rc = ssock_server_close(a->h);
        TRACE("[%d] early close srv%d: %s\n", step_no, a->idx,
              ssock_err_name(rc));
        if (rc == 0) {
            CHECK(a->was_open);
            a->main_ok = 1;
            return 0; /* ours won: the other close may not have run yet */
        }
        CHECK(rc == SSOCK_ECLOSED);
        ssock_server_free(a->h);
        model_srv_closed(a->idx);
        for (int i = 0; i < N_SOCK; i++)
            if (R.sock[i].h != NULL && R.sock[i].srv == a->idx)
                R.sock[i].srv = -1;
        memset(&R.srv[a->idx], 0, sizeof(R.srv[a->idx]));
        return 1;
    }
    int rc = ssock_socket_close(a->h);
    TRACE("[%d] early close sock%d: %s\n", step_no, a->idx, ssock_err_name(rc));
    if (rc == 0) {
        CHECK(a->was_open);
        a->main_ok = 1;
        return 0;
    }
    CHECK(rc == SSOCK_ECLOSED);
    ssock_socket_free(a->h);
    memset(&R.sock[a->idx], 0, sizeof(R.sock[a->idx]));
    return 1;
}

/*
 * Close a server or a socket on a second thread while the next op runs.
 * `delay`: bit 7 clear: the close starts after (bits 0-2) * 200 us; bit 7
 * set: it starts at the main thread's ((bits 3-5) + 1)th system call, the
 * main thread waiting per bits 0-1 (0: no, 1: until it started, 2-3: until
 * it returned). Bit 6: right after the op, the main thread frees the
 * handle once a close of its own says SSOCK_ECLOSED, without waiting for
 * the second thread.
 */
static void op_async(void)
{
    uint8_t what = next();
    uint8_t delay = next();
    struct async *a = &R.as;
    int early_free = (delay & 0x40) != 0, freed = 0;

    memset(a, 0, sizeof(*a));
    if (what & 1) {
        int k = (what >> 1) % N_SRV;
        if (R.srv[k].h == NULL)
            return;
        a->kind = A_SRV;
        a->idx = k;
        a->h = R.srv[k].h;
        a->was_open = !R.srv[k].closed;
    } else {
        int i = (what >> 1) % N_SOCK;
        if (R.sock[i].h == NULL)
            return;
        a->kind = A_SOCK;
        a->idx = i;
        a->h = R.sock[i].h;
        a->was_open = !R.sock[i].self_closed;
    }
    a->delay_us = (delay % 8) * 200;
    if (delay & 0x80) {
        a->at_call = 1 + ((delay >> 3) & 7);
        seam_arm(a->at_call, (delay & 3) >= 2 ? W_DONE : (delay & 3));
    }
    if (pthread_create(&a->th, NULL, async_main, a) != 0) {
        seam.armed = 0;
        a->kind = A_NONE;
        return;
    }
    uint8_t op = next();
    run_op(op);
    if (a->at_call > 0)
        seam_flush();
    if (early_free) {
        /* The op may have freed it already (not this handle: op_free_*
         * skip it); wait until our close says ECLOSED or wins. */
        freed = free_after_eclosed(a);
    }
    pthread_join(a->th, NULL);
    TRACE("[%d] async close %s%d: %s%s\n", step_no,
          a->kind == A_SRV ? "srv" : "sock", a->idx, ssock_err_name(a->rc),
          freed ? " (freed by the main thread meanwhile)" : "");

    /* Exactly one close of an open handle succeeds. */
    CHECK(a->rc == 0 || a->rc == SSOCK_ECLOSED);
    CHECK((a->rc == 0) + a->main_ok == a->was_open);
    if (freed) {
        /* The model slot went with the handle. */
    } else if (a->kind == A_SRV) {
        model_srv_closed(a->idx);
    } else {
        R.sock[a->idx].self_closed = 1;
        CHECK(ssock_socket_fd(R.sock[a->idx].h) == -1);
    }
    a->kind = A_NONE;
}

enum {
    OP_OPEN,
    OP_CONNECT,
    OP_ACCEPT,
    OP_READ,
    OP_WRITE,
    OP_SHUTDOWN,
    OP_CLOSE_SOCK,
    OP_FREE_SOCK,
    OP_CLOSE_SRV,
    OP_FREE_SRV,
    OP_CLI_SEND,
    OP_CLI_RECV,
    OP_CLI_CLOSE,
    OP_FAULT,
    OP_ASYNC,
    OP_SET_TIMEOUTS,
    OP_NONBLOCK,
    OP_MISUSE,
    N_OPS
};

static void run_op(uint8_t op)
{
    switch (op % N_OPS) {
    case OP_OPEN:
        op_open();
        break;
    case OP_CONNECT:
        op_connect();
        break;
    case OP_ACCEPT:
        op_accept();
        break;
    case OP_READ:
        op_read();
        break;
    case OP_WRITE:
        op_write();
        break;
    case OP_SHUTDOWN:
        op_shutdown();
        break;
    case OP_CLOSE_SOCK:
        op_close_sock();
        break;
    case OP_FREE_SOCK:
        op_free_sock();
        break;
    case OP_CLOSE_SRV:
        op_close_srv();
        break;
    case OP_FREE_SRV:
        op_free_srv();
        break;
    case OP_CLI_SEND:
        op_cli_send();
        break;
    case OP_CLI_RECV:
        op_cli_recv();
        break;
    case OP_CLI_CLOSE:
        op_cli_close();
        break;
    case OP_FAULT:
        op_fault();
        break;
    case OP_ASYNC:
        /* Not nested: the op after an async close runs on its own. */
        if (R.as.kind == A_NONE)
            op_async();
        break;
    case OP_SET_TIMEOUTS:
        op_set_timeouts();
        break;
    case OP_NONBLOCK:
        op_nonblock();
        break;
    default:
        op_misuse();
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tls_fixtures(); /* kept for the process: before counting descriptors */
    int fds = count_fds();

    if (tracing < 0)
        tracing = getenv("SSOCK_FUZZ_TRACE") != NULL;
    memset(&R, 0, sizeof(R));
    for (int c = 0; c < N_CLI; c++)
        R.cli[c].fd = -1;
    R.p = data;
    R.left = size;
    faults_reset();

    for (step_no = 0; step_no < MAX_STEPS && R.left > 0; step_no++) {
        run_op(next());
        /* Quiet now (no second thread): the counters add up. */
        for (int k = 0; k < N_SRV; k++)
            if (R.srv[k].h != NULL && R.srv[k].tls)
                check_tls_stats(R.srv[k].h, R.srv[k].closed);
    }

    /* Everything the input opened is released, in a fixed order. Faults
     * still armed would only make close report errors; drop them. */
    faults_reset();
    for (int i = 0; i < N_SOCK; i++)
        ssock_socket_free(R.sock[i].h);
    for (int k = 0; k < N_SRV; k++)
        ssock_server_free(R.srv[k].h);
    for (int c = 0; c < N_CLI; c++)
        if (R.cli[c].fd >= 0)
            close(R.cli[c].fd);
    if (fds >= 0) {
        int now = count_fds();
        if (now != fds) {
            fprintf(stderr,
                    "fuzz_lifecycle: %d descriptors before the input, %d "
                    "after\n",
                    fds, now);
            abort();
        }
    }
    return 0;
}
