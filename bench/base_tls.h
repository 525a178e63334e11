/*
 * The skeleton both raw TLS baselines share (base_openssl.c,
 * base_mbedtls.c): accept, handshake, echo, the way a user writes it with
 * the TLS library alone. Two shapes:
 *
 *   --serial   the accept loop runs each handshake to its end (or to the
 *              handshake timeout) before it accepts the next connection,
 *              then hands the connection to a thread that echoes;
 *   --threads  the accept loop hands every new connection to its own
 *              thread, which runs the handshake and then echoes.
 *
 * Accepted sockets get TCP_NODELAY, as ssock's do (a TLS flight can be
 * several writes; --no-nodelay leaves Nagle on). Handshakes run on a
 * non-blocking socket with one total deadline (the handshake timeout); the echo
 * runs on a blocking socket with a 16 KiB buffer, like ssock-echo.
 * SIGINT/SIGTERM: stop accepting, shut every connection down, wait for the
 * threads, exit 0.
 */
#ifndef SSOCK_BENCH_BASE_TLS_H
#define SSOCK_BENCH_BASE_TLS_H

#include <stddef.h>

#include "common.h"

/* What differs between the TLS libraries. `ctx` is the library's shared
 * configuration, `sess` one connection. */
struct base_tls_ops {
    /* A session for an accepted, non-blocking fd, or NULL. */
    void *(*session_new)(void *ctx, int fd);
    /* One handshake step: 0 done, POLLIN or POLLOUT to wait for, -1 on a
     * failure. */
    int (*handshake)(void *sess);
    /* Blocking read: bytes read (> 0), 0 at the end of the stream, -1. */
    long (*read)(void *sess, void *buf, size_t len);
    /* Blocking write of all of buf: 0 or -1. */
    int (*write)(void *sess, const void *buf, size_t len);
    /* Free the session; `goodbye` asks for a close_notify first. */
    void (*session_free)(void *sess, int goodbye);
};

/* Listen, print the listening line, serve until SIGINT/SIGTERM. Returns
 * the exit status. */
int base_tls_run(const char *prog, const struct base_tls_ops *ops, void *ctx,
                 const struct bench_server_args *a);

#endif
