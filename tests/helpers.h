/* Shared helpers for the cmocka test programs: loopback clients, a
 * monotonic clock, an IPv6 probe, one-shot events, threads that can be
 * joined with a time limit, and a connected (server, accepted socket,
 * client fd) triple. */
#ifndef SSOCK_TESTS_HELPERS_H
#define SSOCK_TESTS_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sys/types.h>

#include "ssock/ssock.h"

/* What the header promises for close-wakes-a-blocked-thread. */
#define TH_WAKE_MS 100
/* Scheduling tolerance added to every upper timing bound: the documented
 * limit + th_slack_ms(). 30 ms natively, 100 ms under a sanitizer (ASan,
 * TSan), 400 ms under Valgrind (which runs everything ~20x slower). Lower
 * bounds get no tolerance beyond 1 ms of millisecond rounding. Tests that
 * measure a time judge the best of up to TH_TRIES runs (the machine is
 * shared and noisy); they never widen the bound. */
int th_slack_ms(void);
#define TH_SLACK_MS th_slack_ms()
#define TH_TRIES 3
/* 1 under Valgrind, 2 under a sanitizer, 0 otherwise. */
int th_slow_mode(void);
/* "Something is stuck": how long a test waits for a thread before it
 * declares failure. */
#define TH_STUCK_MS 5000

/* Monotonic clock. */
int64_t th_now_ms(void);
int64_t th_now_us(void);
/* Sleep the full time, also across EINTR. Only used to create a delay
 * whose effect is then measured. */
void th_sleep_ms(int ms);

/* 1 when a TCP socket can be bound to ::1, else 0 with the reason in
 * `why` (may be NULL). */
int th_has_ipv6(char *why, size_t whylen);

/*
 * Skipping a case. A cmocka skip() shows as a pass in ctest, so every skip
 * goes through th_skip_check(): it prints "SKIP: <reason>" on stderr (the
 * gate counts these lines), appends the reason to $SSOCK_SKIP_LOG when set,
 * and when SSOCK_GATE=1 is in the environment it returns 1 so the caller
 * fails instead (in the gate every backend, client and IPv6 must be there).
 */
int th_skip_check(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define TH_SKIP(...)                                                           \
    do {                                                                       \
        if (th_skip_check(__VA_ARGS__))                                        \
            fail_msg("SSOCK_GATE=1: this case may not be skipped");            \
        skip();                                                                \
    } while (0)

/* Skip the current cmocka test, saying why, when ::1 is unusable. */
#define TH_REQUIRE_IPV6()                                                      \
    do {                                                                       \
        char th_why_[128];                                                     \
        if (!th_has_ipv6(th_why_, sizeof th_why_))                             \
            TH_SKIP("IPv6 loopback ::1 unavailable: %s", th_why_);             \
    } while (0)

/* Loopback address text for a family: "127.0.0.1" or "::1". */
const char *th_loopback(int family);

/* A blocking, close-on-exec TCP socket of `family`; fd or -errno. */
int th_socket(int family);
/* Connect an existing socket to ip:port within timeout_ms (the socket is
 * left blocking). 0 or -errno (-ETIMEDOUT). */
int th_connect_fd(int fd, const char *ip, int port, int timeout_ms);
/* socket + connect to the loopback of `family`; fd or -errno. */
int th_connect(int family, int port, int timeout_ms);

/* Port a socket is bound to (getsockname), or -errno. */
int th_local_port(int fd);

/* Send everything (MSG_NOSIGNAL); 0 or -errno. */
int th_send_all(int fd, const void *buf, size_t len);
/* Wait up to timeout_ms for data, then recv once: >0 bytes, 0 end of
 * stream, -ETIMEDOUT, or -errno. */
ssize_t th_recv_some(int fd, void *buf, size_t len, int timeout_ms);
/* Receive exactly len bytes, each wait bounded by timeout_ms; 0, 1 on end
 * of stream before len bytes, -ETIMEDOUT or -errno. */
int th_recv_all(int fd, void *buf, size_t len, int timeout_ms);
/* Close with an RST instead of a FIN (SO_LINGER 0). */
void th_close_rst(int fd);

/* Deterministic data: byte `i` of stream `seed`. */
uint8_t th_pattern(uint32_t seed, uint64_t i);
void th_fill(uint8_t *buf, size_t len, uint32_t seed, uint64_t offset);
/* Index of the first byte that differs from the pattern, or len. */
size_t th_check(const uint8_t *buf, size_t len, uint32_t seed, uint64_t offset);

/* One-shot event. */
typedef struct th_event {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int set;
} th_event;
void th_event_init(th_event *e);
void th_event_destroy(th_event *e);
void th_event_set(th_event *e);
/* 1 once set, 0 if timeout_ms passed first. */
int th_event_wait(th_event *e, int timeout_ms);

/* A thread that can be waited for with a time limit. */
typedef struct th_thread {
    pthread_t tid;
    th_event done;
    void *(*fn)(void *);
    void *arg;
} th_thread;
/* 0 or a pthread error number. */
int th_thread_start(th_thread *t, void *(*fn)(void *), void *arg);
/* 1: the thread finished and was joined (resources released).
 * 0: still running after timeout_ms; it is left running (and leaked: the
 * caller must then also leak whatever the thread uses, and fail). */
int th_thread_join(th_thread *t, int timeout_ms);

/* A call run on its own thread, timed: start_us just before the call,
 * end_us just after. Lets a test survive (and report) a call that blocks
 * when it must not, such as a close. */
typedef struct th_call {
    th_thread t;
    int (*fn)(void *);
    void *arg;
    int rc;
    int64_t start_us, end_us;
} th_call;
/* 0 or a pthread error number. */
int th_call_start(th_call *c, int (*fn)(void *), void *arg);
/* 1: returned (c->rc, c->start_us, c->end_us are set); 0: still blocked
 * after timeout_ms (the thread is leaked, see th_thread_join). */
int th_call_wait(th_call *c, int timeout_ms);

/* A server on a loopback address, a client connected to it, and the
 * accepted socket. */
typedef struct th_pair {
    ssock_server *srv;
    ssock_socket *sock;
    int cfd;
    int port;
    int family; /* of the client */
} th_pair;
/* Open a server on `addr` (NULL: every interface) with port 0 and the given
 * options (NULL: defaults), connect a `family` client, accept it.
 * 0 or a status; on failure everything is released. */
int th_pair_open_opts(th_pair *p, const char *addr, int family,
                      const ssock_server_options *opts);
int th_pair_open(th_pair *p, const char *addr, int family);
/* Free the socket, the server and the client fd (whatever is left). */
void th_pair_free(th_pair *p);

/*
 * The system-call spy: a struct ssock__sys (src/internal.h) that calls the
 * real functions and records which thread is inside a call that can block
 * (poll, recv, send, accept4). "Still blocked" checks use it to prove a
 * thread is inside the library's wait, instead of sleeping and hoping.
 * One spy per process (tests run one case at a time).
 */
struct ssock__sys;
const struct ssock__sys *th_spy_sys(void);
/* Forget what was recorded. */
void th_spy_reset(void);
/* 1 once at least `n` threads are inside a blocking call (poll, recv, send,
 * accept4) and no call has started or ended for 20 ms (so nobody is
 * spinning); 0 if that did not happen within timeout_ms. */
int th_spy_wait_blocked(int n, int timeout_ms);
/* Number of threads inside a blocking call now. */
int th_spy_inside(void);
/* th_pair_open_opts with the spy as the server's system-call table. */
int th_pair_open_sys_(th_pair *p, const char *addr, int family,
                      const ssock_server_options *opts,
                      const struct ssock__sys *sys);
int th_pair_open_spy(th_pair *p, const char *addr, int family,
                     const ssock_server_options *opts);

/* Restore the default SIGPIPE disposition and unblock it, so a write that
 * raised SIGPIPE would kill the test. */
void th_sigpipe_default(void);

#endif
