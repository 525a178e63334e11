/*
 * Declarations shared between ssock's own source files (prefix ssock__).
 * Nothing here is exported from the shared library.
 */
#ifndef SSOCK_INTERNAL_H
#define SSOCK_INTERNAL_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "ssock/features.h"
#include "ssock/ssock.h"

#if defined(__GNUC__)
#define SSOCK__MUST_CHECK __attribute__((warn_unused_result))
#else
#define SSOCK__MUST_CHECK
#endif

/*
 * Every system call the library makes on a descriptor goes through this
 * table, so that tests and fuzzers can inject faults (EINTR, EAGAIN,
 * ECONNABORTED, EMFILE, short transfers, resets). The default table calls
 * the real functions; it is const, so there is no global mutable state.
 */
struct ssock__tls_backend;
struct ssock__hs_set;
struct ssock__cidr_list;

struct ssock__sys {
    int (*socket)(int domain, int type, int protocol);
    int (*bind)(int fd, const struct sockaddr *sa, socklen_t len);
    int (*listen)(int fd, int backlog);
    int (*accept4)(int fd, struct sockaddr *sa, socklen_t *len, int flags);
    int (*poll)(struct pollfd *fds, nfds_t n, int timeout_ms);
    ssize_t (*recv)(int fd, void *buf, size_t len, int flags);
    ssize_t (*send)(int fd, const void *buf, size_t len, int flags);
    int (*shutdown)(int fd, int how);
    int (*close)(int fd);
};

extern const struct ssock__sys ssock__sys_default;

/* ---- wait.c: monotonic deadlines and poll ---------------------------- */

/* A deadline in monotonic nanoseconds; 0 means "never". */
typedef uint64_t ssock__deadline;

uint64_t ssock__now_ns(void);
/* Deadline `timeout_ms` from now; SSOCK_WAIT_FOREVER gives "never". */
ssock__deadline ssock__deadline_in(int timeout_ms);
/* poll() timeout for the time left: -1 for never, 0 when expired, else
 * milliseconds rounded up so a wait never ends before the deadline. */
int ssock__deadline_poll_ms(ssock__deadline d);
int ssock__deadline_expired(ssock__deadline d);

/*
 * poll() until one of `fds` has an event or the deadline passes; EINTR
 * continues with the time left. Returns the number of ready descriptors
 * (> 0), 0 when the deadline passed, or -errno.
 */
SSOCK__MUST_CHECK int ssock__poll(const struct ssock__sys *sys,
                                  struct pollfd *fds, nfds_t n,
                                  ssock__deadline d);

/* The wake descriptor of a server: an eventfd (or a pipe where eventfd is
 * missing). Signalled once, on close, and never drained. */
struct ssock__wake {
    int rd;
    int wr;
};
SSOCK__MUST_CHECK int ssock__wake_open(struct ssock__wake *w);
void ssock__wake_signal(const struct ssock__wake *w);
void ssock__wake_close(struct ssock__wake *w);

/* ---- handles ------------------------------------------------------------ */

/* Server states: DRAINED stops listening but leaves accepted sockets be. */
enum { SSOCK__OPEN = 0, SSOCK__CLOSED = 1, SSOCK__DRAINED = 2 };

/*
 * How a server turns listener readiness into finished connections: the
 * accept strategy, chosen once at open (plain: accept4 and hand out;
 * pending: connections wait in the pending set for a PROXY header and/or a
 * TLS handshake). server.c calls only these; a strategy reaches the server
 * only through the functions under "server.c" below.
 */
struct ssock__acceptor {
    /* One non-blocking step: 0 with *out, SSOCK_EAGAIN, SSOCK_ECLOSED or
     * -errno. Work stops early once `d` (0: none) has passed. */
    int (*step)(ssock_server *srv, ssock__deadline d, ssock_socket **out);
    /* The descriptor a blocking accept polls (with the wake fd). */
    int (*wait_fd)(const ssock_server *srv);
    /* Earliest deadline of a pending connection, 0 for none. */
    ssock__deadline (*next_deadline)(const ssock_server *srv);
    /* Connections pending right now (any thread). */
    int (*pending)(const ssock_server *srv);
    /* Discard every pending connection (close, accept not running). */
    void (*close)(ssock_server *srv);
    /* Free the strategy's state (the server's memory goes). */
    void (*free)(ssock_server *srv);
};
extern const struct ssock__acceptor ssock__acceptor_plain;
extern const struct ssock__acceptor ssock__acceptor_pending;

struct ssock_server {
    atomic_int refs;  /* the owner's handle + one per live socket */
    atomic_int state; /* SSOCK__OPEN / SSOCK__CLOSED */
    atomic_int last_os_error;
    int fd;         /* listening socket, -1 once closed */
    int reserve_fd; /* spare descriptor shed on EMFILE/ENFILE, or -1 */
    struct ssock__wake wake;
    int port;
    int accept_timeout_ms;
    int read_timeout_ms;
    int write_timeout_ms;
    const struct ssock__sys *sys;
    /* lock guards: children, accepting, and the descriptors on close */
    pthread_mutex_t lock;
    pthread_cond_t idle;    /* signalled when an accept() call ends */
    int accepting;          /* an accept() call is running */
    ssock_socket *children; /* accepted sockets whose fd is still open */
    char host[SSOCK_HOST_MAX];
    struct sockaddr_storage local; /* bound address (getsockname) */
    socklen_t local_len;
    /* From the options (0.2). */
    int keepalive, keepalive_idle_s, keepalive_interval_s, keepalive_count;
    ssock_event_fn on_event;
    void *on_event_arg;
    void *user_data;
    int ep; /* epoll: listener, wake fd, pending connections (poll fd) */
    const struct ssock__acceptor *acc;
    int is_tls; /* opened with a TLS config (fixed; srv->tls may change) */
    int nonblocking_sockets;
    int proxy_mode; /* SSOCK_PROXY_* */
    int proxy_timeout_ms;
    struct ssock__cidr_list *proxy_trusted;
    /* TLS: the config (a reference) and the pending set, which only the
     * accepting thread touches (and close, once it has left). A new config
     * from ssock_server_set_tls() waits in tls_next until the accepting
     * thread takes it at its next step. */
    ssock_tls_config *tls;
    _Atomic(ssock_tls_config *) tls_next;
    struct ssock__hs_set *hs;
    atomic_ulong n_handed_out;
    atomic_ulong n_proxy_ok;
    atomic_ulong n_proxy_malformed;
    atomic_ulong n_proxy_untrusted;
    atomic_ulong n_proxy_timed_out;
    /* Counters readable from any thread. */
    atomic_ulong n_accepted;
    atomic_ulong n_hs_ok;
    atomic_ulong n_hs_failed;
    atomic_ulong n_hs_timed_out;
    atomic_ulong n_hs_dropped;
    atomic_ulong n_hs_source_limited;
};

/*
 * What differs between a plain and a TLS connection. Each function runs
 * inside op_enter()/op_exit(), so the descriptor is valid throughout.
 */
struct ssock__conn_ops {
    /* 0 with *n >= 1, or a status (SSOCK_EOF, SSOCK_ETIMEOUT, -errno...). */
    int (*read)(ssock_socket *s, void *buf, size_t len, size_t *n);
    /* 0 when all was written; *n counts what went out either way. */
    int (*write)(ssock_socket *s, const char *buf, size_t len, size_t *n);
    /* Orderly end of the write side before SHUT_WR (TLS close_notify):
     * 0 or a status. */
    int (*shutdown_write)(ssock_socket *s);
    /* Orderly goodbye before close (TLS close_notify); best effort, bounded
     * by min(write timeout, SSOCK__GOODBYE_MAX_MS); only called when no
     * other call is running. */
    void (*goodbye)(ssock_socket *s);
    /* Bytes readable without touching the descriptor. */
    size_t (*pending)(ssock_socket *s);
    /* Non-blocking mode: push output queued inside the library: 0 when
     * none is left, SSOCK_EAGAIN (s->want set) or a status. */
    int (*flush)(ssock_socket *s);
    /* Free the heavy per-connection state (TLS session and buffers);
     * called once, just before the fd closes. */
    void (*release)(ssock_socket *s);
    /* Free what is left (kept for accessors after close); called once,
     * when the handle is freed, after release. */
    void (*destroy)(ssock_socket *s);
};

/*
 * The life of a socket is one atomic word, `ctl`, so that "is it closed?",
 * "who is inside a call?" and "who releases the descriptor and frees the
 * handle?" are decided in single atomic steps:
 *
 *   bit 0  CLOSED    close (or free, or discard) has been called
 *   bit 1  RELEASED  the descriptor and the TLS session have been released
 *   bit 2  FREED     the owner has called free: the handle goes when idle
 *   bits 3+          calls in progress (read, write, shutdown, pending, and
 *                    a running close), in units of SSOCK__CTL_BUSY
 *
 * The last one in on a CLOSED socket releases it (once, claimed by setting
 * RELEASED) before it counts itself out; whoever makes the count 0 on a
 * FREED one frees the memory. No lock on the I/O path, and no window in
 * which two threads disagree about who releases or frees what.
 */
#define SSOCK__CTL_CLOSED 1u
#define SSOCK__CTL_RELEASED 2u
#define SSOCK__CTL_FREED 4u
#define SSOCK__CTL_BUSY 8u

struct ssock_socket {
    const struct ssock__conn_ops *ops;
    void *tls; /* struct tls_conn (tls_socket.c), NULL for plain sockets */
    ssock_server *srv;  /* holds a reference */
    ssock_socket *prev; /* in srv->children, guarded by srv->lock */
    ssock_socket *next;
    const struct ssock__sys *sys;
    int fd;
    atomic_uint ctl;       /* see above */
    atomic_int srv_closed; /* the server was closed: I/O fails */
    atomic_int last_os_error;
    int read_timeout_ms;
    int write_timeout_ms;
    int local_port;
    int rcvtimeo_ms; /* SO_RCVTIMEO now on the fd (plain reads) */
    union ssock__peer {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } peer, tcp_peer; /* peer: the client (a PROXY header's); tcp_peer: TCP's */
    int proxied;      /* a PROXY header named `peer` */
    char *proxy_tlvs; /* ALPN, AUTHORITY, UNIQUE_ID values, or NULL */
    size_t tlv_len[3];
    size_t tlv_off[3];
    /* Non-blocking mode (owner's thread only; read by a closing one). */
    atomic_int nonblocking;
    int want;                 /* SSOCK_WANT_* after SSOCK_EAGAIN */
    atomic_int queued;        /* output queued inside the library (TLS); read by
                                 ssock_socket_want() while a close may write it */
    uint64_t read_idle_since; /* ns: last read progress */
    uint64_t write_stall_since; /* ns: a write blocked with no progress, 0 */
    char peer_host[SSOCK_HOST_MAX]; /* formatted on first use */
    char tcp_peer_host[SSOCK_HOST_MAX];
    char local_host[SSOCK_HOST_MAX]; /* formatted on first use */
    struct sockaddr_storage local;   /* getsockname, on first use */
    socklen_t local_len;             /* 0 until asked */
    void *user_data;
};

/* ---- socket.c ---------------------------------------------------------- */

/* Longest a close spends on its goodbye (TLS close_notify), ms. */
#define SSOCK__GOODBYE_MAX_MS 1000

/* A library status (SSOCK_E*, <= -1000) is not an errno. */
#define SSOCK__IS_ERRNO(rc) ((rc) < 0 && (rc) > -1000)

/* Called by server close with srv->lock held: mark the socket failed and
 * wake any thread blocked on it. */
void ssock__socket_server_closed(ssock_socket *sock);
/* Wait until the socket's fd is ready for `events` (POLLIN/POLLOUT) or the
 * deadline passes: 0, SSOCK_ETIMEOUT or -errno. */
SSOCK__MUST_CHECK int ssock__socket_wait(ssock_socket *s, short events,
                                         ssock__deadline d);
/* SSOCK_ECLOSED / SSOCK_ESERVERCLOSED when the socket can no longer do
 * I/O, else 0 (for loops inside a call that must notice a close). */
int ssock__socket_dead(ssock_socket *s);
/* Non-blocking mode: the status of a read that found nothing (SSOCK_EAGAIN,
 * or SSOCK_ETIMEOUT once the socket was idle for its read timeout), and of
 * a write or flush that could not go on (`progressed`: some bytes went out
 * in this call): SSOCK_EAGAIN, or SSOCK_ETIMEOUT once nothing left for the
 * write timeout. Both record `want` (SSOCK_WANT_*). */
int ssock__nb_read_blocked(ssock_socket *s, int want);
int ssock__nb_write_blocked(ssock_socket *s, int want, int progressed);
struct ssock__proxy_result;
/* A PROXY header was read: the peer becomes the client it names (unless
 * it says "use the TCP peer"); its TLVs are kept. 0 or SSOCK_ENOMEM. */
SSOCK__MUST_CHECK int
ssock__socket_set_proxy(ssock_socket *s, const struct ssock__proxy_result *r);
/* Free a socket that was never handed to the user (pending handshake). */
void ssock__socket_discard(ssock_socket *s);

/* Creates the handle for an accepted descriptor (takes ownership of fd,
 * closing it on failure). The caller links it to the server. */
SSOCK__MUST_CHECK int ssock__socket_new(ssock_server *srv, int fd,
                                        const struct sockaddr *peer,
                                        socklen_t peer_len, ssock_socket **out);

/* ---- pending.c: the pending set (PROXY headers, TLS handshakes) -------- */

/* Set up the pending set of a server (at open; srv->ep exists). */
SSOCK__MUST_CHECK int ssock__hs_open(ssock_server *srv);

/* ---- tls_socket.c (only with SSOCK_HAVE_TLS) -------------------------- */

/* Make an accepted socket a TLS one (session created, handshake not yet
 * run; the socket holds a reference to cfg). On failure the socket is
 * unchanged and still plain. */
SSOCK__MUST_CHECK int ssock__tls_socket_attach(ssock_socket *s,
                                               ssock_tls_config *cfg);
/* Copy the backend's text of the socket's last TLS error into buf. */
void ssock__tls_socket_error(ssock_socket *s, char *buf, size_t len);
/* One handshake step: 0 done, POLLIN/POLLOUT to wait for, or a negative
 * status (the handshake failed). */
SSOCK__MUST_CHECK int ssock__tls_socket_handshake(ssock_socket *s);

/* ---- server.c: what the accept strategies use ------------------------- */

/* accept4 once: 0 with *out, SSOCK_ETIMEOUT-free: -EAGAIN when nothing is
 * pending, other -errno; transient errors are reported as -EAGAIN. */
SSOCK__MUST_CHECK int ssock__server_accept_fd(ssock_server *srv,
                                              ssock_socket **out);

/* ---- server.c ---------------------------------------------------------- */

/* Register the listener and the wake fd in srv->ep (pending.c). */
SSOCK__MUST_CHECK int ssock__epoll_add_server(ssock_server *srv);
/* Text of the last failed handshake ("" if none). */
const char *ssock__hs_last_error(const ssock_server *srv);

/* Report an event to the server's callback, if any. `sock` gives the peer
 * (and is passed on for SSOCK_EVENT_ACCEPTED); `detail` may be NULL. */
void ssock__server_event(ssock_server *srv, int type, ssock_socket *sock,
                         int status, const char *detail);

/* Open with a system-call table other than the default (tests, fuzzing). */
SSOCK__MUST_CHECK int ssock__server_open_sys(ssock_server **out,
                                             const ssock_server_options *o,
                                             const struct ssock__sys *sys);
void ssock__server_ref(ssock_server *srv);
void ssock__server_unref(ssock_server *srv);
/* Remove a socket from its server's list before its descriptor closes.
 * Returns 0 normally; never fails. */
void ssock__server_unlink(ssock_server *srv, ssock_socket *sock);

#endif /* SSOCK_INTERNAL_H */
