/*
 * ssock — secure server sockets for C.
 *
 * Conventions that hold for every function in this header unless its own
 * comment says otherwise:
 *
 *  - Status: functions return 0 on success or a negative code. Library codes
 *    are the SSOCK_E* constants below (all <= -1000); a failed system call
 *    returns the negated errno (for example -EADDRINUSE, -EMFILE,
 *    -ECONNRESET). ssock_strerror() and ssock_err_name() describe any code.
 *    The library never prints and never changes signal dispositions.
 *  - Timeouts are `int` milliseconds, measured on the monotonic clock.
 *    SSOCK_WAIT_FOREVER (0) means "no limit"; a negative timeout is rejected
 *    with SSOCK_EBADTIMEOUT.
 *  - Ownership: the library allocates every handle. A handle stays valid
 *    after it is closed, so a second close is reported (SSOCK_ECLOSED)
 *    instead of crashing; the matching *_free() releases the handle and is a
 *    no-op on NULL. A failed open or accept leaves nothing behind.
 *  - Threads (the whole contract): a handle is used by one thread at a
 *    time, with these exceptions, which may run at any moment while the
 *    handle is alive (not yet freed):
 *      - ssock_server_close() and ssock_socket_close(), from any thread.
 *        They wake a thread blocked on that handle (and, for a server,
 *        every thread blocked on a socket accepted from it) within 100 ms.
 *        A close that loses a race with another close returns
 *        SSOCK_ECLOSED; exactly one of them does the work.
 *      - ssock_server_tls_stats() and the TLS getters of a socket
 *        (ssock/tls.h), from any thread.
 *    *_free() must not run at the same time as another call on the same
 *    handle by the owner, but it may be called as soon as the owner's own
 *    calls have returned, even while a close from another thread is still
 *    running (still sending a TLS close_notify, or still discarding a
 *    server's pending handshakes): free then returns at once and that close
 *    releases the rest when it ends. So "accept() returned SSOCK_ECLOSED,
 *    now free the server" and "read() returned SSOCK_ECLOSED, now free the
 *    socket" are always safe. After free, no call on the handle is allowed
 *    (not even close). The library has no global mutable state and needs
 *    no init call.
 *  - Descriptors are close-on-exec; writes never raise SIGPIPE.
 */
#ifndef SSOCK_SSOCK_H
#define SSOCK_SSOCK_H

#include <stddef.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported symbols (the library is built with -fvisibility=hidden and a
 * linker version script that exports ssock_* only). The same declarations
 * serve the static library. */
#if defined(__GNUC__)
#define SSOCK_API __attribute__((visibility("default")))
#else
#define SSOCK_API
#endif

/* SSOCK_DEPRECATED(version, msg): marks a function that will go in the next
 * major version (see "API and ABI stability" in README.md): it keeps
 * working, and the compiler says what to use instead. */
#if defined(__GNUC__)
#define SSOCK_DEPRECATED(version, msg)                                         \
    __attribute__((deprecated("deprecated since ssock " version ": " msg)))
#else
#define SSOCK_DEPRECATED(version, msg)
#endif

#if defined(__GNUC__)
#define SSOCK_NODISCARD __attribute__((warn_unused_result))
#else
#define SSOCK_NODISCARD
#endif

/* ------------------------------------------------------------------ */
/* Version                                                             */
/* ------------------------------------------------------------------ */

#define SSOCK_VERSION_MAJOR 0
#define SSOCK_VERSION_MINOR 3
#define SSOCK_VERSION_PATCH 0
#define SSOCK_VERSION_STRING "0.3.0"
/** The version as one number, 0xMMmmpp: compare with >= in #if. */
#define SSOCK_VERSION_HEX                                                      \
    ((SSOCK_VERSION_MAJOR << 16) | (SSOCK_VERSION_MINOR << 8) |                \
     SSOCK_VERSION_PATCH)

/** Version of the library actually linked, as "MAJOR.MINOR.PATCH". */
SSOCK_API const char *ssock_version_string(void);
/** Version of the library actually linked, as SSOCK_VERSION_HEX (may be
 * newer than the header a program was built with). */
SSOCK_API unsigned ssock_version(void);

/* ------------------------------------------------------------------ */
/* Constants (values of the documented TotalCross ServerSocket API)    */
/* ------------------------------------------------------------------ */

/** Wait without a time limit (accept and socket timeouts). */
#define SSOCK_WAIT_FOREVER 0
/** Default accept() timeout: DEFAULT_SOTIMEOUT. */
#define SSOCK_DEFAULT_ACCEPT_TIMEOUT_MS 10000
/** Default listen backlog: DEFAULT_BACKLOG. */
#define SSOCK_DEFAULT_BACKLOG 100
/** Default read timeout of an accepted socket. */
#define SSOCK_DEFAULT_READ_TIMEOUT_MS 5000
/** Default write timeout of an accepted socket. */
#define SSOCK_DEFAULT_WRITE_TIMEOUT_MS 2000
/** Longest text ssock_server_host() / ssock_socket_peer_host() return,
 * including the terminating NUL (an IPv6 address with a zone id). */
#define SSOCK_HOST_MAX 64

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/*
 * XX(name, value, message). Codes are only ever appended; values never
 * change. System errors are not listed: they are -errno.
 */
#define SSOCK_ERROR_MAP(XX)                                                    \
    XX(EINVAL, -1000, "invalid argument (NULL handle or output pointer)")      \
    XX(EBADPORT, -1001, "port must be between 0 and 65535")                    \
    XX(EBADTIMEOUT, -1002, "timeout must be >= 0 ms (0 waits forever)")        \
    XX(EBADBACKLOG, -1003, "backlog must be a positive number")                \
    XX(EBADADDR, -1004, "address is empty or malformed")                       \
    XX(ERESOLVE, -1005, "address could not be resolved")                       \
    XX(ENOMEM, -1006, "out of memory")                                         \
    XX(ETIMEOUT, -1007, "operation timed out")                                 \
    XX(ECLOSED, -1008, "handle is already closed")                             \
    XX(ESERVERCLOSED, -1009,                                                   \
       "I/O error: the server this socket was accepted from is closed")        \
    XX(EOF, -1010, "end of stream: the peer closed the connection")            \
    XX(ENOBACKEND, -1011, "TLS backend not built into this library")           \
    XX(EFILE, -1012, "certificate, key or CA file cannot be read")             \
    XX(ECERTPARSE, -1013, "certificate, key or CA could not be parsed")        \
    XX(EKEYMISMATCH, -1014, "private key does not match the certificate")      \
    XX(ECERTTIME, -1015, "certificate is expired or not yet valid")            \
    XX(EVERSION, -1016, "TLS version not supported by this backend")           \
    XX(ETLSCONFIG, -1017, "invalid TLS configuration")                         \
    XX(ETLS, -1018, "TLS protocol error")                                      \
    XX(ENOTTLS, -1019, "not a TLS socket")                                     \
    XX(EBROKEN, -1020,                                                         \
       "socket can no longer write: an earlier TLS write failed part way")     \
    XX(ETRUNCATED, -1021,                                                      \
       "TLS stream ended without close_notify (possible truncation)")          \
    XX(ENOTSUP, -1022, "option not supported by this version of the library")  \
    XX(EAGAIN, -1023,                                                          \
       "would block: wait as ssock_socket_want() says, then call again")       \
    XX(EPROXY, -1024,                                                          \
       "PROXY protocol header malformed or from an untrusted "                 \
       "source")                                                               \
    XX(ENOTLISTENING, -1025, "descriptor is not a listening TCP socket")

/** Status codes. 0 is success; see SSOCK_ERROR_MAP for the messages. */
enum ssock_status {
    SSOCK_OK = 0,
#define SSOCK__ERR_ENUM(name, value, msg) SSOCK_##name = (value),
    SSOCK_ERROR_MAP(SSOCK__ERR_ENUM)
#undef SSOCK__ERR_ENUM
};

/**
 * Human-readable text for any status: an SSOCK_E* code, 0, or a negated
 * errno. Never NULL, never allocates, thread-safe; unknown codes give
 * "unknown error".
 */
SSOCK_API const char *ssock_strerror(int status);

/**
 * Symbolic name of a status: "SSOCK_ETIMEOUT", "EADDRINUSE", "SSOCK_OK".
 * Never NULL; unknown codes give "UNKNOWN".
 */
SSOCK_API const char *ssock_err_name(int status);

/**
 * What a status means for the caller, so that applications need not list
 * codes by hand:
 *  - SSOCK_ERRCLASS_OK: 0.
 *  - SSOCK_ERRCLASS_RETRY: nothing is wrong with the handle; the same call
 *    may succeed later (SSOCK_ETIMEOUT, SSOCK_ENOMEM, -EINTR, -EAGAIN,
 *    -EMFILE, -ENFILE, -ENOBUFS, -ENOMEM, -ECONNABORTED). Note the
 *    difference: SSOCK_ETIMEOUT is the library's timeout (a read or write
 *    or accept waited its time; the socket is still usable), while
 *    -ETIMEDOUT is the kernel saying the connection is dead (keepalive or
 *    retransmissions gave up): class PEER.
 *  - SSOCK_ERRCLASS_PEER: this connection is over or unusable, because of
 *    the peer or the network (SSOCK_EOF, SSOCK_ETRUNCATED, SSOCK_ETLS,
 *    SSOCK_EBROKEN, -ECONNRESET, -EPIPE, -ETIMEDOUT, -EHOSTUNREACH, ...):
 *    close the socket; the server is fine.
 *  - SSOCK_ERRCLASS_CLOSED: the handle (or its server) was closed
 *    (SSOCK_ECLOSED, SSOCK_ESERVERCLOSED).
 *  - SSOCK_ERRCLASS_USAGE: the call or configuration is wrong and will
 *    fail again the same way (SSOCK_EINVAL, the SSOCK_EBAD* codes, TLS
 *    configuration errors, SSOCK_ENOTTLS, SSOCK_ENOTSUP, -EADDRINUSE,
 *    -EACCES, ...).
 *  - SSOCK_ERRCLASS_SYSTEM: any other system error.
 */
typedef enum ssock_err_class {
    SSOCK_ERRCLASS_OK = 0,
    SSOCK_ERRCLASS_RETRY = 1,
    SSOCK_ERRCLASS_PEER = 2,
    SSOCK_ERRCLASS_CLOSED = 3,
    SSOCK_ERRCLASS_USAGE = 4,
    SSOCK_ERRCLASS_SYSTEM = 5
} ssock_err_class;

/** The class of a status (above). Never fails; unknown codes are
 * SSOCK_ERRCLASS_SYSTEM. */
SSOCK_API ssock_err_class ssock_err_classify(int status);

/** 1 when ssock_err_classify(status) is SSOCK_ERRCLASS_RETRY, else 0. */
SSOCK_API int ssock_err_is_transient(int status);

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

/** A listening socket (TotalCross ServerSocket). Opaque. */
typedef struct ssock_server ssock_server;
/** A connection accepted from a server (TotalCross Socket). Opaque. */
typedef struct ssock_socket ssock_socket;
/** A TLS configuration (see ssock/tls.h). Opaque. */
typedef struct ssock_tls_config ssock_tls_config;

/** Kinds of server events (ssock_server_options.on_event). */
typedef enum ssock_event_type {
    /** accept() is handing out this connection (plain: taken from the
     * listener; TLS: its handshake finished). `sock` is set. */
    SSOCK_EVENT_ACCEPTED = 1,
    /** A connection was taken and closed unread: out of descriptors (the
     * pending connection shed; no peer address then) or out of memory. */
    SSOCK_EVENT_REFUSED = 2,
    /** A TLS handshake failed (status and the backend's text say why). */
    SSOCK_EVENT_HANDSHAKE_FAILED = 3,
    /** A TLS handshake reached its handshake deadline. */
    SSOCK_EVENT_HANDSHAKE_TIMED_OUT = 4,
    /** A pending TLS handshake was dropped to make room (max_handshakes or
     * the per-source limit reached; status 0), or because the server
     * closed or drained (status SSOCK_ECLOSED). */
    SSOCK_EVENT_HANDSHAKE_DROPPED = 5,
    /** A connection was closed unread because of its PROXY protocol
     * header (status SSOCK_EPROXY; detail "untrusted source", "malformed
     * header" or "header timed out"). The peer is the TCP peer. */
    SSOCK_EVENT_PROXY_REFUSED = 6
} ssock_event_type;

/**
 * One server event, passed to ssock_server_options.on_event. Everything it
 * points to is valid only during the callback.
 */
typedef struct ssock_event {
    /** ssock_event_type. */
    int type;
    /** The peer as numeric text and port ("" and 0 when unknown). */
    const char *peer_host;
    int peer_port;
    /** 0, or the status that ended the connection (SSOCK_ETLS, -ECONNRESET,
     * SSOCK_ETIMEOUT, SSOCK_ECLOSED, -EMFILE, ...). */
    int status;
    /** The backend's text for TLS failures, else "". */
    const char *detail;
    /** For SSOCK_EVENT_ACCEPTED: the socket being handed out (do not free
     * or close it here; the getters may be used). Else NULL. */
    ssock_socket *sock;
} ssock_event;

/** Event callback: called synchronously from the thread running accept()
 * (and, for handshakes dropped by a close or drain, from the thread that
 * closes). It must not call accept, close or free on the same server. */
typedef void (*ssock_event_fn)(const ssock_event *ev, void *arg);

/** A hook run on the listening socket after socket() and ssock's own
 * options, before bind() (SO_BINDTODEVICE, SO_MARK, buffer sizes...).
 * Return 0 to go on, or a negative status that ssock_server_open() then
 * returns (the socket is closed for you). */
typedef int (*ssock_before_bind_fn)(int fd, void *arg);

/**
 * Everything a server is opened with. Always fill it with
 * ssock_server_options_init() first, then change fields. The init macro
 * passes the size of the struct the program was compiled with, so a
 * program built against an older header keeps working with a newer
 * library (which then uses defaults for the fields it appended), and a
 * newer program on an older library gets SSOCK_ENOTSUP when it sets a
 * field that library does not know. Every field is safe at zero except
 * those the init function sets.
 */
typedef struct ssock_server_options {
    /** Set by ssock_server_options_init(); do not change. */
    size_t struct_size;
    /** 0..65535; 0 picks an ephemeral port (read it back with
     * ssock_server_local_port()). */
    int port;
    /** accept() timeout in ms, >= 0; SSOCK_WAIT_FOREVER waits forever. */
    int accept_timeout_ms;
    /** listen() backlog, > 0. */
    int backlog;
    /**
     * Local address to bind, or NULL for every interface (dual-stack "::"
     * with IPV6_V6ONLY off, or "0.0.0.0" where IPv6 is unavailable).
     * Accepts IPv4 literals, IPv6 literals with or without brackets and
     * with an optional zone id ("fe80::1%eth0"), and host names, which are
     * resolved with getaddrinfo(); every result is tried in order. Copied;
     * need not outlive the call.
     */
    const char *addr;
    /** Read timeout given to each accepted socket, ms, >= 0. */
    int read_timeout_ms;
    /** Write timeout given to each accepted socket, ms, >= 0. */
    int write_timeout_ms;
    /**
     * TLS configuration (see ssock/tls.h), or NULL for a plain server. The
     * server keeps its own reference: the caller may free the config right
     * after opening. accept() then returns only sockets whose handshake
     * has finished, and never waits longer than accept_timeout_ms for
     * one. A library built without TLS fails with SSOCK_ENOBACKEND.
     */
    const ssock_tls_config *tls;

    /* ---- since 0.2 ---- */

    /** Non-zero: an IPv6 listener takes IPv6 only (IPV6_V6ONLY on), so a
     * separate IPv4 server can share the port. With addr NULL it binds
     * "::" IPv6-only. Default 0: dual-stack. */
    int ipv6_only;
    /** Non-zero: TCP keepalive on every accepted socket, so a peer that
     * vanished is noticed even with read timeout SSOCK_WAIT_FOREVER (the
     * read then fails with -ETIMEDOUT). The three values are seconds
     * (idle before the first probe, between probes) and a count of
     * unanswered probes; 0 keeps the system's value; negative:
     * SSOCK_EBADTIMEOUT. */
    int keepalive;
    int keepalive_idle_s;
    int keepalive_interval_s;
    int keepalive_count;
    /** Optional hook on the listening socket before bind() (see
     * ssock_before_bind_fn), and its argument. */
    ssock_before_bind_fn before_bind;
    void *before_bind_arg;
    /** Optional event callback (see ssock_event) and its argument. */
    ssock_event_fn on_event;
    void *on_event_arg;
    /** Initial value of ssock_server_user_data(). */
    void *user_data;

    /* ---- since 0.3 ---- */

    /**
     * Non-zero: SO_REUSEPORT on the listening socket, so several servers
     * (one per worker thread or process, each with its own event loop) can
     * listen on the same address and port; the kernel spreads new
     * connections among them by a hash of the client's address and port.
     * Every server sharing the port must set it (and, on Linux, run as the
     * same user). When one of them closes, connections already queued on
     * its own listener (not yet accepted) are reset by the kernel, not
     * handed to the others: drain a worker by ssock_server_drain() after
     * it stops taking new work, or keep one listener and hand accepted
     * sockets to workers instead. Not available: the open fails with
     * -ENOPROTOOPT.
     */
    int reuse_port;
    /** Non-zero: every accepted socket starts in non-blocking mode (see
     * ssock_socket_set_nonblocking()), so an event loop need not switch
     * each one. */
    int nonblocking;
    /**
     * PROXY protocol (HAProxy's, for servers behind a load balancer):
     * SSOCK_PROXY_OFF (0, default), SSOCK_PROXY_V1, SSOCK_PROXY_V2 or
     * SSOCK_PROXY_ANY. When on, every connection must start with such a
     * header. It is read without blocking inside the acceptor, in the same
     * pending set and under the same deadline as a TLS handshake (plain
     * servers: proxy_timeout_ms), before the TLS ClientHello; accept()
     * returns only connections whose header (and handshake) finished.
     * ssock_socket_peer_host() / _peer_port() / _peer_addr() then give the
     * original client the header names, and ssock_socket_tcp_peer_host()
     * etc. the balancer. A v1 "UNKNOWN" or v2 LOCAL header keeps the TCP
     * peer. A malformed header, or any connection from a source not in
     * proxy_trusted, is closed unread (nothing is sent back) and counted
     * (ssock_server_stats()).
     */
    int proxy_protocol;
    /** Who may send PROXY headers: comma-separated CIDRs, IPv4 and IPv6
     * ("10.0.0.0/8,2001:db8::/32"; a bare address is a /32 or /128).
     * NULL: SSOCK_PROXY_DEFAULT_TRUSTED (loopback only). Copied. A
     * malformed list fails the open with SSOCK_EBADADDR. */
    const char *proxy_trusted;
    /** Plain servers with proxy_protocol on: time a connection has to send
     * its whole header, ms (> 0; 0 means SSOCK_DEFAULT_PROXY_TIMEOUT_MS).
     * TLS servers use their handshake timeout, which covers the header
     * and the handshake together. */
    int proxy_timeout_ms;
} ssock_server_options;

/** ssock_server_options.proxy_protocol values. */
#define SSOCK_PROXY_OFF 0
#define SSOCK_PROXY_V1 1
#define SSOCK_PROXY_V2 2
#define SSOCK_PROXY_ANY 3
/** Default ssock_server_options.proxy_trusted: loopback. */
#define SSOCK_PROXY_DEFAULT_TRUSTED "127.0.0.0/8,::1/128"
/** Default ssock_server_options.proxy_timeout_ms. */
#define SSOCK_DEFAULT_PROXY_TIMEOUT_MS 5000

/** Fill `opts` with the defaults: port 0, DEFAULT accept timeout, backlog
 * and socket timeouts, addr NULL, everything else 0. No-op on NULL. Use
 * the macro; the function takes the size of the caller's struct. */
SSOCK_API void ssock_server_options_init_sized(ssock_server_options *opts,
                                               size_t size);
#define ssock_server_options_init(opts)                                        \
    ssock_server_options_init_sized((opts), sizeof(ssock_server_options))

/**
 * Open a listening server. Arguments are checked in the order port,
 * timeout, backlog, addr, before any system call. SO_REUSEADDR is set.
 * Accepted sockets are close-on-exec and have TCP_NODELAY on (each write
 * leaves at once; no Nagle delay).
 *
 * @param out   receives the handle on success, NULL on failure.
 * @return 0; SSOCK_EINVAL (NULL `out` or `opts`, `opts` not filled by
 *         ssock_server_options_init(), or proxy_protocol not one of the
 *         SSOCK_PROXY_* values); SSOCK_ENOTSUP (a field this library
 *         version does not know is set); SSOCK_EBADPORT;
 *         SSOCK_EBADTIMEOUT (accept, read or write timeout < 0, or a
 *         negative keepalive value or proxy_timeout_ms);
 *         SSOCK_EBADBACKLOG; SSOCK_EBADADDR (empty string, or a malformed
 *         proxy_trusted list, checked also when proxy_protocol is off);
 *         SSOCK_ERESOLVE (host name unknown); SSOCK_ENOMEM; or -errno from
 *         socket/bind/listen (-EADDRINUSE, -EACCES, -EADDRNOTAVAIL,
 *         -EMFILE, ...) for the last address tried; or what the
 *         before_bind hook returned.
 * Blocks only while resolving a host name.
 */
SSOCK_API SSOCK_NODISCARD int
ssock_server_open(ssock_server **out, const ssock_server_options *opts);

/** ServerSocket(int port): defaults for everything else. */
SSOCK_API SSOCK_NODISCARD int ssock_server_open_port(ssock_server **out,
                                                     int port);
/** ServerSocket(int port, int timeout). */
SSOCK_API SSOCK_NODISCARD int
ssock_server_open_timeout(ssock_server **out, int port, int timeout_ms);
/** ServerSocket(int port, int timeout, String addr). */
SSOCK_API SSOCK_NODISCARD int ssock_server_open_addr(ssock_server **out,
                                                     int port, int timeout_ms,
                                                     const char *addr);
/** ServerSocket(int port, int timeout, int backlog, String addr). */
SSOCK_API SSOCK_NODISCARD int
ssock_server_open_backlog(ssock_server **out, int port, int timeout_ms,
                          int backlog, const char *addr);

/**
 * Wait for and accept one connection (ServerSocket.accept()).
 *
 * Blocks for at most the server's accept timeout (forever for
 * SSOCK_WAIT_FOREVER). Interrupted waits (EINTR) continue with the time
 * left; connections that vanish before they are accepted (ECONNABORTED)
 * are skipped inside the same deadline.
 *
 * @param out receives the new socket, or NULL whenever the result is not 0.
 * @return 0; SSOCK_ETIMEOUT ("nothing": the timeout passed with no
 *         connection); SSOCK_ECLOSED (the server is closed, or was closed
 *         by another thread during the wait); SSOCK_EINVAL; SSOCK_ENOMEM;
 *         -EMFILE / -ENFILE (out of descriptors: the pending connection is
 *         shed, the server stays usable and accepts again once descriptors
 *         are free; never spins); or another -errno.
 * Thread: one accepting thread per server.
 */
SSOCK_API SSOCK_NODISCARD int ssock_server_accept(ssock_server *server,
                                                  ssock_socket **out);

/**
 * The address actually bound, as numeric text without brackets ("::",
 * "0.0.0.0", "127.0.0.1", "::1", "fe80::1%eth0"). Valid until
 * ssock_server_free(); still answers after close. NULL for a NULL server.
 */
SSOCK_API const char *ssock_server_host(const ssock_server *server);

/** The same as ssock_server_host(), under the name the socket getters use
 * (ssock_socket_local_host(), ssock_socket_peer_host()). */
SSOCK_API const char *ssock_server_local_host(const ssock_server *server);

/** The port actually bound (the ephemeral one when 0 was asked for), or
 * SSOCK_EINVAL for a NULL server. Still answers after close. */
SSOCK_API int ssock_server_local_port(const ssock_server *server);

/** The accept timeout in ms the server was opened with. */
SSOCK_API int ssock_server_accept_timeout(const ssock_server *server);

/**
 * Close the listening socket (ServerSocket.close()).
 *
 * Safe from any thread. A thread blocked in ssock_server_accept() returns
 * SSOCK_ECLOSED within 100 ms. Every socket accepted from this server and
 * still open fails each later read and write with SSOCK_ESERVERCLOSED (the
 * documented IOException); a thread blocked in read or write on one wakes
 * within 100 ms with that code. Those socket handles stay valid until their
 * owner frees them.
 *
 * @return 0, SSOCK_ECLOSED if already closed, SSOCK_EINVAL for NULL.
 */
SSOCK_API int ssock_server_close(ssock_server *server);

/**
 * Graceful drain, for a daemon that restarts: stop listening (the
 * listening socket is closed, so new connections are refused by the
 * kernel, and pending TLS handshakes are dropped) while every socket
 * already accepted carries on normally. A thread blocked in
 * ssock_server_accept() returns SSOCK_ECLOSED within 100 ms, and later
 * accepts return SSOCK_ECLOSED. A later ssock_server_close() still makes
 * the accepted sockets fail with SSOCK_ESERVERCLOSED; ssock_server_free()
 * after a drain leaves them alone. Safe from any thread, like close.
 * @return 0, SSOCK_ECLOSED if already closed or drained, SSOCK_EINVAL.
 */
SSOCK_API int ssock_server_drain(ssock_server *server);

/** The user-data pointer (initially ssock_server_options.user_data). */
SSOCK_API void *ssock_server_user_data(const ssock_server *server);
/** Set the user-data pointer. No-op on a NULL server. */
SSOCK_API void ssock_server_set_user_data(ssock_server *server, void *data);

/**
 * The bound address in binary form: copies it into *addr and sets *len.
 * Still answers after close. @return 0, SSOCK_EINVAL (NULL argument).
 */
SSOCK_API int ssock_server_local_addr(const ssock_server *server,
                                      struct sockaddr_storage *addr,
                                      socklen_t *len);

/**
 * Close the server if still open and release the handle. No-op on NULL.
 * Sockets accepted from it stay valid (and failing) until freed.
 */
SSOCK_API void ssock_server_free(ssock_server *server);

/** errno of the last failed system call on this server, 0 if none. */
SSOCK_API int ssock_server_last_os_error(const ssock_server *server);

/** The listening descriptor, or -1 once closed. Do not close it. For an
 * event loop use ssock_server_poll_fd() and ssock_server_try_accept():
 * on a TLS server a readable listener does not mean a socket is ready. */
SSOCK_API int ssock_server_fd(const ssock_server *server);

/**
 * Open a server on a descriptor that is already listening (socket
 * activation by systemd or inetd, or a listener inherited from a parent
 * process). The descriptor is checked (a stream socket, AF_INET or
 * AF_INET6, listening), made non-blocking and close-on-exec, and owned by
 * the server from then on (closed by ssock_server_close(), also when this
 * call fails with anything but SSOCK_EINVAL or SSOCK_ENOTLISTENING).
 * `opts` may be NULL for the defaults; its port, addr, backlog,
 * ipv6_only, reuse_port and before_bind are ignored (the socket is bound
 * already); everything else applies. Every accept and close rule of
 * ssock_server_open() holds.
 * @return 0; SSOCK_EINVAL (NULL `out`, fd < 0); SSOCK_ENOTLISTENING (not a
 *         listening TCP socket; fd left open and untouched); the errors of
 *         ssock_server_open() for the options; -errno.
 */
SSOCK_API SSOCK_NODISCARD int
ssock_server_open_fd(ssock_server **out, int fd,
                     const ssock_server_options *opts);

/** First descriptor systemd passes (SD_LISTEN_FDS_START). */
#define SSOCK_LISTEN_FDS_START 3

/**
 * systemd's socket-activation protocol: the number of listening
 * descriptors passed to this process (at SSOCK_LISTEN_FDS_START, 4, ...),
 * or 0 when LISTEN_PID is not this process or LISTEN_FDS is unset or
 * malformed. Reads the environment, changes nothing (the variables are
 * left set; children see LISTEN_PID naming their parent and so get 0).
 */
SSOCK_API int ssock_listen_fds(void);

/* ---- Event loops (since 0.3) ---- */

/**
 * The one descriptor an event loop watches for a server, for POLLIN
 * (level-triggered): it is readable when ssock_server_try_accept() may
 * have work, i.e. a new connection arrived, a pending TLS handshake or
 * PROXY header can make progress, or the server was closed. It covers
 * the listener and every pending handshake (an internal epoll instance),
 * so a wake-up costs O(ready), not O(pending). Pending handshakes also
 * have deadlines: wake up after ssock_server_next_timeout() ms too. The
 * descriptor stays valid (and, once the server is closed or drained,
 * readable) until ssock_server_free(): remove it from your loop before
 * freeing. Do not read, close or change it. -1 for NULL.
 */
SSOCK_API int ssock_server_poll_fd(const ssock_server *server);

/**
 * Milliseconds until the earliest deadline of a pending handshake or
 * PROXY header (0: one has passed; call ssock_server_try_accept()), or -1
 * when nothing is pending (no timer needed) or for NULL.
 */
SSOCK_API int ssock_server_next_timeout(const ssock_server *server);

/**
 * The non-blocking accept step for event loops. Never waits: takes what
 * the listener has queued (a bounded batch), advances the pending
 * handshakes and PROXY headers that are ready (each by one bounded step),
 * expires those past their deadline, and returns the first connection
 * that is finished: a plain connection at once, a TLS one once its
 * handshake is done. Connections that finish together are queued and
 * returned by the next calls first. Call it whenever
 * ssock_server_poll_fd() is readable or the timeout from
 * ssock_server_next_timeout() has passed, and keep calling while it
 * returns 0. The blocking ssock_server_accept() runs on the same
 * machinery, with the same counters, limits and events; do not run both
 * on one server at once.
 * @param out receives the socket, or NULL whenever the result is not 0.
 * @return 0; SSOCK_EAGAIN (nothing finished yet: wait for the poll fd or
 *         the next timeout); SSOCK_ECLOSED; SSOCK_EINVAL; -EMFILE /
 *         -ENFILE (as for ssock_server_accept()); another -errno.
 * Thread: the accepting thread (one per server), like accept.
 */
SSOCK_API SSOCK_NODISCARD int ssock_server_try_accept(ssock_server *server,
                                                      ssock_socket **out);

/** Connection counters of a server (ssock_server_stats()). Fields are only
 * ever appended; the macro passes the size the program was compiled
 * with. */
typedef struct ssock_server_stats {
    /** TCP connections taken from the listening socket. */
    unsigned long long accepted;
    /** Connections handed out by accept() / try_accept(). */
    unsigned long long handed_out;
    /** Connections pending right now (PROXY header or TLS handshake in
     * progress, or finished and waiting to be handed out). */
    unsigned long long pending;
    /** PROXY headers read successfully. */
    unsigned long long proxy_ok;
    /** Connections closed for a malformed PROXY header (also one that
     * ended or failed before its header was complete). */
    unsigned long long proxy_malformed;
    /** Connections closed because their source is not in
     * proxy_trusted. */
    unsigned long long proxy_untrusted;
    /** Connections closed because their PROXY header did not arrive in
     * time. */
    unsigned long long proxy_timed_out;
} ssock_server_stats;

/**
 * Read a server's counters (plain or TLS; the TLS handshake counters are
 * in ssock_server_tls_stats()). Zeroes and fills the first `size` bytes.
 * @return 0, SSOCK_EINVAL (NULL argument or size 0). Safe from any thread
 * while the handle is alive; still answers after close.
 */
SSOCK_API int ssock_server_stats_sized(const ssock_server *server,
                                       ssock_server_stats *stats, size_t size);
#define ssock_server_stats(server, stats)                                      \
    ssock_server_stats_sized((server), (stats), sizeof(ssock_server_stats))

/* ------------------------------------------------------------------ */
/* Accepted sockets                                                    */
/* ------------------------------------------------------------------ */

/**
 * Read what is available, at most `len` bytes (len > 0); waits up to the
 * read timeout for the first byte.
 *
 * @param nread receives the number of bytes read (0 whenever the result is
 *              not 0).
 * @return 0 with *nread >= 1; SSOCK_EOF (peer closed its side; on TLS:
 *         with close_notify); SSOCK_ETRUNCATED (TLS only: the stream ended
 *         without close_notify, a possible truncation; sticky like
 *         SSOCK_EOF); SSOCK_ETLS (TLS protocol error);
 *         SSOCK_ETIMEOUT (nothing arrived within the read timeout; the
 *         socket stays usable); SSOCK_ECLOSED; SSOCK_ESERVERCLOSED;
 *         SSOCK_EINVAL (NULL pointer or len 0); or -errno (-ECONNRESET).
 */
SSOCK_API SSOCK_NODISCARD int ssock_socket_read(ssock_socket *sock, void *buf,
                                                size_t len, size_t *nread);

/**
 * Write all `len` bytes, or fail. Each wait for buffer space is bounded by
 * the write timeout (a peer that stops reading for that long makes the
 * write fail). Never raises SIGPIPE. `len` 0 writes nothing and returns 0
 * on an open socket (`buf` may then be NULL).
 *
 * On a TLS socket a write that fails part way (timeout, error) may leave
 * part of an encrypted record inside the library that *nwritten does not
 * count; it is never sent in place of later data: every later write (and
 * ssock_socket_shutdown_write()) fails with SSOCK_EBROKEN, reads go on, and
 * close sends no close_notify. Plain sockets have no such state: after
 * SSOCK_ETIMEOUT a write may be retried with the bytes not counted.
 *
 * @param nwritten optional; receives the bytes handed to the kernel (TLS:
 *                 whole records accepted by the library), also when the
 *                 call fails part way.
 * @return 0; SSOCK_ETIMEOUT; SSOCK_ECLOSED; SSOCK_ESERVERCLOSED;
 *         SSOCK_EBROKEN (TLS, see above); SSOCK_ETLS; SSOCK_EINVAL; or
 *         -errno (-EPIPE, -ECONNRESET).
 */
SSOCK_API SSOCK_NODISCARD int ssock_socket_write(ssock_socket *sock,
                                                 const void *buf, size_t len,
                                                 size_t *nwritten);

/** Set the read timeout in ms (>= 0, 0 waits forever).
 * @return 0, SSOCK_EBADTIMEOUT, SSOCK_EINVAL. */
SSOCK_API int ssock_socket_set_read_timeout(ssock_socket *sock, int timeout_ms);
/** Set the write timeout in ms (>= 0, 0 waits forever).
 * @return 0, SSOCK_EBADTIMEOUT, SSOCK_EINVAL. */
SSOCK_API int ssock_socket_set_write_timeout(ssock_socket *sock,
                                             int timeout_ms);
/** Current read timeout in ms, or SSOCK_EINVAL for NULL. */
SSOCK_API int ssock_socket_read_timeout(const ssock_socket *sock);
/** Current write timeout in ms, or SSOCK_EINVAL for NULL. */
SSOCK_API int ssock_socket_write_timeout(const ssock_socket *sock);

/** The peer's address as numeric text (IPv4-mapped peers of a dual-stack
 * server are shown as plain IPv4). Valid until free; NULL for NULL. */
SSOCK_API const char *ssock_socket_peer_host(const ssock_socket *sock);
/** The peer's port, or SSOCK_EINVAL for NULL. */
SSOCK_API int ssock_socket_peer_port(const ssock_socket *sock);
/** The local port of the connection, or SSOCK_EINVAL for NULL. */
SSOCK_API int ssock_socket_local_port(const ssock_socket *sock);
/** The local address of the connection as numeric text (the address the
 * client connected to; IPv4-mapped shown as IPv4). Valid until free; NULL
 * for NULL, "" when unknown (asked first after close). */
SSOCK_API const char *ssock_socket_local_host(const ssock_socket *sock);

/** The peer's address in binary form, as accept() gave it (IPv4-mapped
 * IPv6 addresses of a dual-stack server stay mapped here). @return 0,
 * SSOCK_EINVAL (NULL argument). Still answers after close. */
SSOCK_API int ssock_socket_peer_addr(const ssock_socket *sock,
                                     struct sockaddr_storage *addr,
                                     socklen_t *len);
/** The local address in binary form. @return 0, SSOCK_EINVAL,
 * SSOCK_ECLOSED (closed before it was first asked for). */
SSOCK_API int ssock_socket_local_addr(const ssock_socket *sock,
                                      struct sockaddr_storage *addr,
                                      socklen_t *len);

/** The user-data pointer of a socket (NULL until set). */
SSOCK_API void *ssock_socket_user_data(const ssock_socket *sock);
/** Set the user-data pointer. No-op on a NULL socket. */
SSOCK_API void ssock_socket_set_user_data(ssock_socket *sock, void *data);

/**
 * Shut down the write side (the peer reads end of stream); reading goes
 * on. On a TLS socket close_notify is sent first (RFC 8446 6.1), waiting at
 * most the write timeout, so the peer sees a proper end, not a truncation.
 * @return 0, SSOCK_ECLOSED, SSOCK_ESERVERCLOSED, SSOCK_EINVAL,
 *         SSOCK_EBROKEN (TLS, after a failed write), SSOCK_ETIMEOUT or
 *         SSOCK_ETLS (close_notify could not be sent), -errno.
 */
SSOCK_API int ssock_socket_shutdown_write(ssock_socket *sock);

/**
 * Close the connection and release its descriptor. Safe from any thread:
 * a thread blocked in read or write on this socket returns SSOCK_ECLOSED
 * within 100 ms, and the descriptor is released when the last such call
 * has left (never under a running call). When no other call is running,
 * a TLS socket first sends close_notify, best effort, for at most the
 * write timeout or 1000 ms, whichever is shorter (also with
 * SSOCK_WAIT_FOREVER): close always returns within about a second.
 * @return 0; SSOCK_ECLOSED if already closed; SSOCK_EINVAL for NULL.
 */
SSOCK_API int ssock_socket_close(ssock_socket *sock);

/** Close if still open and release the handle. No-op on NULL. Returns at
 * once (after its own close, if the socket was open); when a close from
 * another thread is still running, that close frees the handle as it ends.
 * See "Threads" at the top of this file. */
SSOCK_API void ssock_socket_free(ssock_socket *sock);

/** The connection's descriptor for event loops, or -1 once closed. Poll it
 * for readiness only; read and write through this API; do not close it.
 * On a TLS socket, bytes already decrypted wait inside the library and do
 * not make the descriptor readable: check ssock_socket_pending() before
 * waiting for POLLIN. */
SSOCK_API int ssock_socket_fd(const ssock_socket *sock);

/**
 * Bytes the next ssock_socket_read() returns without touching the
 * descriptor: decrypted TLS data left over from a record that a smaller
 * read did not take. 0 for plain sockets (the kernel's buffer is the
 * descriptor's readiness), for NULL and for closed sockets. Never blocks.
 */
SSOCK_API size_t ssock_socket_pending(const ssock_socket *sock);

/** errno of the last failed system call on this socket, 0 if none. */
SSOCK_API int ssock_socket_last_os_error(const ssock_socket *sock);

/**
 * The peer of the TCP connection itself. Without a PROXY header this is
 * the same as ssock_socket_peer_host() / _port() / _addr(); behind a load
 * balancer that sent one, it is the balancer (the other getters give the
 * client the header named). Same rules as those getters.
 */
SSOCK_API const char *ssock_socket_tcp_peer_host(const ssock_socket *sock);
SSOCK_API int ssock_socket_tcp_peer_port(const ssock_socket *sock);
SSOCK_API int ssock_socket_tcp_peer_addr(const ssock_socket *sock,
                                         struct sockaddr_storage *addr,
                                         socklen_t *len);
/** 1 when a PROXY header named the peer (ssock_socket_peer_*() give that
 * client), 0 when the TCP peer is the peer (no PROXY protocol, or a v1
 * UNKNOWN / v2 LOCAL header), SSOCK_EINVAL for NULL. */
SSOCK_API int ssock_socket_proxied(const ssock_socket *sock);

/** PROXY v2 TLVs ssock keeps (ssock_socket_proxy_tlv()). */
#define SSOCK_PROXY_TLV_ALPN 0x01
#define SSOCK_PROXY_TLV_AUTHORITY 0x02
#define SSOCK_PROXY_TLV_UNIQUE_ID 0x05
/**
 * The value of a PROXY v2 TLV the balancer sent (ALPN, AUTHORITY — the
 * host name the client asked for — or UNIQUE_ID): a pointer into the
 * socket, valid until free, and its length in *len. NULL (and *len 0)
 * when absent, for other types, and for NULL arguments. The balancer's
 * words: not validated beyond their length.
 */
SSOCK_API const void *ssock_socket_proxy_tlv(const ssock_socket *sock, int type,
                                             size_t *len);

/* ---- Non-blocking sockets, for event loops (since 0.3) ---- */

/** What a non-blocking call waits for (ssock_socket_want()). */
#define SSOCK_WANT_READ 1
#define SSOCK_WANT_WRITE 2

/**
 * Switch the socket between blocking (the default, unless the server's
 * `nonblocking` option is set) and non-blocking mode. In non-blocking
 * mode:
 *  - ssock_socket_read(), _write(), _flush() and _shutdown_write() never
 *    wait. When they cannot progress they return SSOCK_EAGAIN, and
 *    ssock_socket_want() says whether to wait for the descriptor to be
 *    readable or writable: TLS may need a writable descriptor to read and
 *    a readable one to write. Then call the same function again.
 *  - A read returns what is available now (0 with *nread >= 1), or
 *    SSOCK_EAGAIN. Check ssock_socket_pending() before waiting: bytes
 *    already decrypted do not make the descriptor readable.
 *  - A write takes what it can and reports exactly the bytes taken in
 *    *nwritten; it returns 0 when all `len` bytes were taken and have left
 *    the library, or SSOCK_EAGAIN with *nwritten < len (call again with
 *    the rest), or SSOCK_EAGAIN with *nwritten == len (all taken, but part
 *    is still queued inside the library, at most one TLS record: call
 *    ssock_socket_flush() or write again once writable). Bytes counted as
 *    taken are never sent twice or dropped: the TLS backends' retry rules
 *    are kept inside the library. Reads also push queued output.
 *  - The timeouts become idle timeouts, measured without sleeping: a read
 *    that finds nothing, when nothing was read for the read timeout,
 *    returns SSOCK_ETIMEOUT instead of SSOCK_EAGAIN (and the idle clock
 *    starts again); a write or flush that cannot progress, when no byte
 *    left for the write timeout, returns SSOCK_ETIMEOUT (on TLS, with
 *    bytes queued, the write side is then broken: SSOCK_EBROKEN from then
 *    on, as in blocking mode). ssock_socket_next_timeout() gives the time
 *    left, for the loop's timer.
 *  - close, server close and free keep their rules; a close never waits
 *    (the TLS close_notify is sent only if the kernel takes it at once).
 *    A close from another thread shuts the connection down at once, so the
 *    descriptor polls readable and hung up and a loop waiting on it wakes;
 *    the descriptor itself stays reserved (at the latest) until
 *    ssock_socket_free(), so it never vanishes from the loop's epoll/poll
 *    set unseen: remove it from the set when a call returns SSOCK_ECLOSED,
 *    then free the socket.
 * Switching back to blocking mode is allowed at any time.
 * @return 0; SSOCK_EINVAL (NULL); SSOCK_ECLOSED; SSOCK_ESERVERCLOSED.
 */
SSOCK_API int ssock_socket_set_nonblocking(ssock_socket *sock, int on);

/** 1 in non-blocking mode, 0 in blocking mode, SSOCK_EINVAL for NULL. */
SSOCK_API int ssock_socket_nonblocking(const ssock_socket *sock);

/**
 * After SSOCK_EAGAIN: SSOCK_WANT_READ or SSOCK_WANT_WRITE, what the
 * descriptor must become before the call can progress. Also
 * SSOCK_WANT_WRITE while output is queued inside the library (see
 * ssock_socket_write()); 0 when the last call did not return SSOCK_EAGAIN
 * and nothing is queued. SSOCK_EINVAL for NULL.
 */
SSOCK_API int ssock_socket_want(const ssock_socket *sock);

/**
 * Send output queued inside the library (non-blocking mode: the rest of a
 * TLS record a write could not finish). @return 0 when nothing is left
 * queued; SSOCK_EAGAIN (wait as ssock_socket_want() says); SSOCK_ETIMEOUT;
 * the errors of ssock_socket_write(). In blocking mode, and on plain
 * sockets, there is never anything queued: 0 (or the socket's closed
 * status).
 */
SSOCK_API int ssock_socket_flush(ssock_socket *sock);

/**
 * Non-blocking mode: milliseconds until the socket's next idle timeout
 * (read or write, see ssock_socket_set_nonblocking()); 0 when it has
 * passed (the next read or write returns SSOCK_ETIMEOUT); -1 when no
 * timeout applies (both timeouts SSOCK_WAIT_FOREVER, blocking mode, a
 * closed socket, NULL).
 */
SSOCK_API int ssock_socket_next_timeout(const ssock_socket *sock);

#ifdef __cplusplus
}
#endif

#endif /* SSOCK_SSOCK_H */
