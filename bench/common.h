/*
 * Helpers shared by the benchmark servers and the load generator: the
 * command line every server takes (the same flags as ssock-echo), the
 * listening socket, the stop signals, the clock. Nothing here uses ssock:
 * the baselines must be what a user writes without it.
 */
#ifndef SSOCK_BENCH_COMMON_H
#define SSOCK_BENCH_COMMON_H

#include <stdbool.h>
#include <stdint.h>

/* Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);
/* Milliseconds left until `deadline_ns` (rounded up), 0 once passed. */
int bench_ms_left(uint64_t deadline_ns);

/* Decimal int in [min, max]; false on anything else. */
bool bench_parse_int(const char *s, long min, long max, int *out);

/* Raise RLIMIT_NOFILE's soft limit to the hard limit. */
void bench_raise_nofile(void);

/* Everything a baseline server can be told (a superset; each server
 * rejects what it does not support). */
struct bench_server_args {
    int port;
    const char *addr;
    int backlog;
    int max_conns;
    bool tls;
    const char *cert;
    const char *key;
    const char *backend;
    int min_version; /* 12 or 13 */
    int max_version; /* 12 or 13 */
    int max_handshakes;
    int handshake_timeout_ms;
    bool serial;  /* handshakes in the accept loop (else one thread each) */
    bool threads; /* --threads was given */
    bool nodelay; /* TCP_NODELAY on accepted sockets (default on) */
};

/*
 * Parse argv. `prog` names the program in messages; `tls_ok` says whether
 * --tls and the certificate flags are accepted. Returns 0, 1 after --help
 * (usage printed; exit 0) or 2 on a bad flag (message printed; exit 2).
 */
int bench_parse_server_args(const char *prog, bool tls_ok, int argc,
                            char **argv, struct bench_server_args *a);

/*
 * Open a non-blocking, close-on-exec listening TCP socket on addr:port
 * (IPv4 or IPv6 literal) with SO_REUSEADDR, and print "listening on
 * HOST:PORT" on stdout (flushed). Returns the fd or -1 (message on stderr).
 */
int bench_listen(const char *prog, const char *addr, int port, int backlog);

/*
 * Block SIGINT and SIGTERM in the calling thread (and every thread it
 * starts later), ignore SIGPIPE, and return a signalfd that becomes
 * readable when one of them arrives, or -1.
 */
int bench_stop_signals(void);

#endif
