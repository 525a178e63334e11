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
#include <sys/socket.h>
#include <sys/types.h>

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

enum { SSOCK__OPEN = 0, SSOCK__CLOSED = 1 };

struct ssock_server {
    atomic_int refs;   /* the owner's handle + one per live socket */
    atomic_int state;  /* SSOCK__OPEN / SSOCK__CLOSED */
    atomic_int last_os_error;
    int fd;            /* listening socket, -1 once closed */
    int reserve_fd;    /* spare descriptor shed on EMFILE/ENFILE, or -1 */
    struct ssock__wake wake;
    int port;
    int accept_timeout_ms;
    int read_timeout_ms;
    int write_timeout_ms;
    const struct ssock__sys *sys;
    /* lock guards: children, accepting, and the descriptors on close */
    pthread_mutex_t lock;
    pthread_cond_t idle;   /* signalled when an accept() call ends */
    int accepting;         /* an accept() call is running */
    ssock_socket *children; /* accepted sockets whose fd is still open */
    char host[SSOCK_HOST_MAX];
};

struct ssock_socket {
    ssock_server *srv;   /* holds a reference */
    ssock_socket *prev;  /* in srv->children, guarded by srv->lock */
    ssock_socket *next;
    const struct ssock__sys *sys;
    int fd;
    atomic_int state;      /* SSOCK__OPEN / SSOCK__CLOSED */
    atomic_int srv_closed; /* the server was closed: I/O fails */
    atomic_int busy;       /* read/write/shutdown calls in progress */
    atomic_int fd_owned;   /* 1 until the descriptor is released */
    atomic_int last_os_error;
    int read_timeout_ms;
    int write_timeout_ms;
    int peer_port;
    int local_port;
    char peer_host[SSOCK_HOST_MAX];
};

/* ---- socket.c ---------------------------------------------------------- */

/* Called by server close with srv->lock held: mark the socket failed and
 * wake any thread blocked on it. */
void ssock__socket_server_closed(ssock_socket *sock);

/* Creates the handle for an accepted descriptor (takes ownership of fd,
 * closing it on failure). The caller links it to the server. */
SSOCK__MUST_CHECK int ssock__socket_new(ssock_server *srv, int fd,
                                        const struct sockaddr *peer,
                                        socklen_t peer_len,
                                        ssock_socket **out);

/* ---- server.c ---------------------------------------------------------- */

/* Open with a system-call table other than the default (tests, fuzzing). */
SSOCK__MUST_CHECK int ssock__server_open_sys(ssock_server **out,
                                             const ssock_server_options *o,
                                             const struct ssock__sys *sys);
const struct ssock__sys *ssock__server_sys(const ssock_server *srv);
int ssock__server_read_timeout(const ssock_server *srv);
int ssock__server_write_timeout(const ssock_server *srv);
int ssock__server_port(const ssock_server *srv);
void ssock__server_ref(ssock_server *srv);
void ssock__server_unref(ssock_server *srv);
/* Remove a socket from its server's list before its descriptor closes.
 * Returns 0 normally; never fails. */
void ssock__server_unlink(ssock_server *srv, ssock_socket *sock);

#endif /* SSOCK_INTERNAL_H */
