/* The chaos / gate system-call table: see chaos.h. */
#include "chaos.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FD 4096
#define MAX_ACCEPTED 4096
/* A gate holds its thread at most this long (a test that forgot to release
 * it fails instead of hanging). */
#define GATE_MAX_MS 20000

enum { FD_NONE = 0, FD_LISTEN = 1, FD_CONN = 2 };

static struct {
    atomic_int on;
    atomic_ullong seed;
    atomic_uint generation;
    atomic_long counts[CH_NCALLS];
    atomic_long stale;
    atomic_long first_stale;
    atomic_uchar fd_kind[MAX_FD];
    atomic_int accepted[MAX_ACCEPTED];
    atomic_int n_accepted;
    /* The gate. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int armed;
    int kind;
    int fd;
    int held;     /* a thread is at the gate */
    int released; /* it may go */
} C = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static _Thread_local uint64_t t_state;
static _Thread_local unsigned t_gen;
static _Thread_local int t_role = -1;
static atomic_int next_role = 1000;

static uint64_t mix(uint64_t x)
{
    /* splitmix64 finaliser: distinct roles give unrelated streams. */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t next_rand(void)
{
    unsigned g = atomic_load(&C.generation);
    if (t_gen != g || t_state == 0) {
        if (t_role < 0)
            t_role = atomic_fetch_add(&next_role, 1);
        t_state = mix(atomic_load(&C.seed) ^ mix((uint64_t)t_role)) | 1;
        t_gen = g;
    }
    uint64_t x = t_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t_state = x;
    return x;
}

uint64_t chaos_rand(void)
{
    return next_rand();
}

void chaos_role(int role)
{
    t_role = role;
    t_state = 0;
}

void chaos_start(uint64_t seed)
{
    atomic_store(&C.seed, seed);
    atomic_fetch_add(&C.generation, 1);
    atomic_store(&C.on, 1);
}

void chaos_stop(void)
{
    atomic_store(&C.on, 0);
}

/* Nothing (half the time), a yield, or a sleep of 0-2 ms. */
static void perturb(void)
{
    if (!atomic_load(&C.on))
        return;
    uint64_t r = next_rand();
    switch (r % 8) {
    case 0:
    case 1:
    case 2:
    case 3:
        return;
    case 4:
    case 5:
    case 6:
        sched_yield();
        return;
    default: {
        struct timespec ts = {0, (long)((r >> 8) % 2000001)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        return;
    }
    }
}

static void gate(enum chaos_call kind, int fd)
{
    pthread_mutex_lock(&C.mu);
    if (!C.armed || C.kind != (int)kind ||
        (C.fd >= 0 ? C.fd != fd
                   : (fd >= 0 && fd < MAX_FD &&
                      atomic_load(&C.fd_kind[fd]) == FD_LISTEN))) {
        pthread_mutex_unlock(&C.mu);
        return;
    }
    C.armed = 0;
    C.held = 1;
    C.released = 0;
    pthread_cond_broadcast(&C.cv);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += GATE_MAX_MS / 1000;
    while (!C.released) {
        if (pthread_cond_timedwait(&C.cv, &C.mu, &until) == ETIMEDOUT)
            break;
    }
    C.held = 0;
    pthread_mutex_unlock(&C.mu);
}

void chaos_gate_arm(enum chaos_call kind, int fd)
{
    pthread_mutex_lock(&C.mu);
    C.armed = 1;
    C.kind = (int)kind;
    C.fd = fd;
    C.held = 0;
    C.released = 0;
    pthread_mutex_unlock(&C.mu);
}

int chaos_gate_reached(int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&C.mu);
    int rc = 0;
    while (!C.held) {
        if (pthread_cond_timedwait(&C.cv, &C.mu, &until) == ETIMEDOUT)
            break;
    }
    rc = C.held;
    pthread_mutex_unlock(&C.mu);
    return rc;
}

void chaos_gate_release(void)
{
    pthread_mutex_lock(&C.mu);
    C.armed = 0;
    C.released = 1;
    pthread_cond_broadcast(&C.cv);
    pthread_mutex_unlock(&C.mu);
}

void chaos_reset(void)
{
    chaos_gate_release();
    atomic_store(&C.on, 0);
    for (int i = 0; i < CH_NCALLS; i++)
        atomic_store(&C.counts[i], 0);
    atomic_store(&C.stale, 0);
    atomic_store(&C.first_stale, 0);
    for (int i = 0; i < MAX_FD; i++)
        atomic_store(&C.fd_kind[i], FD_NONE);
    atomic_store(&C.n_accepted, 0);
}

int chaos_accepted_fd(int i)
{
    if (i < 0 || i >= atomic_load(&C.n_accepted) || i >= MAX_ACCEPTED)
        return -1;
    return atomic_load(&C.accepted[i]);
}

long chaos_count(enum chaos_call kind)
{
    return atomic_load(&C.counts[kind]);
}

long chaos_stale_calls(void)
{
    return atomic_load(&C.stale);
}

long chaos_first_stale(void)
{
    return atomic_load(&C.first_stale);
}

static void held(int fd, unsigned char kind)
{
    if (fd >= 0 && fd < MAX_FD)
        atomic_store(&C.fd_kind[fd], kind);
}

/* A call on `fd`: was it the library's? */
static void check_fd(enum chaos_call kind, int fd)
{
    if (fd >= 0 && fd < MAX_FD && atomic_load(&C.fd_kind[fd]) != FD_NONE)
        return;
    if (atomic_fetch_add(&C.stale, 1) == 0)
        atomic_store(&C.first_stale, ((long)kind << 16) | (fd & 0xffff));
}

static void count(enum chaos_call kind)
{
    atomic_fetch_add(&C.counts[kind], 1);
}

static int c_socket(int domain, int type, int protocol)
{
    count(CH_SOCKET);
    perturb();
    int fd = socket(domain, type, protocol);
    int e = errno;
    held(fd, FD_LISTEN);
    perturb();
    errno = e;
    return fd;
}

static int c_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    count(CH_BIND);
    perturb();
    int rc = bind(fd, sa, len);
    int e = errno;
    perturb();
    errno = e;
    return rc;
}

static int c_listen(int fd, int backlog)
{
    count(CH_LISTEN);
    perturb();
    int rc = listen(fd, backlog);
    int e = errno;
    perturb();
    errno = e;
    return rc;
}

static int c_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    count(CH_ACCEPT4);
    gate(CH_ACCEPT4, fd);
    perturb();
    int nfd = accept4(fd, sa, len, flags);
    int e = errno;
    if (nfd >= 0) {
        held(nfd, FD_CONN);
        int i = atomic_fetch_add(&C.n_accepted, 1);
        if (i < MAX_ACCEPTED)
            atomic_store(&C.accepted[i], nfd);
    }
    perturb();
    errno = e;
    return nfd;
}

static int c_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    count(CH_POLL);
    gate(CH_POLL, n > 0 ? fds[0].fd : -1);
    perturb();
    int rc = poll(fds, n, timeout_ms);
    int e = errno;
    perturb();
    errno = e;
    return rc;
}

static ssize_t c_recv(int fd, void *buf, size_t len, int flags)
{
    count(CH_RECV);
    gate(CH_RECV, fd);
    /* After the gate: the descriptor must still be the library's. */
    check_fd(CH_RECV, fd);
    perturb();
    ssize_t n = recv(fd, buf, len, flags);
    int e = errno;
    perturb();
    errno = e;
    return n;
}

static ssize_t c_send(int fd, const void *buf, size_t len, int flags)
{
    count(CH_SEND);
    gate(CH_SEND, fd);
    /* After the gate: the descriptor must still be the library's. */
    check_fd(CH_SEND, fd);
    perturb();
    ssize_t n = send(fd, buf, len, flags);
    int e = errno;
    perturb();
    errno = e;
    return n;
}

static int c_shutdown(int fd, int how)
{
    count(CH_SHUTDOWN);
    gate(CH_SHUTDOWN, fd);
    /* After the gate: the descriptor must still be the library's. */
    check_fd(CH_SHUTDOWN, fd);
    perturb();
    int rc = shutdown(fd, how);
    int e = errno;
    perturb();
    errno = e;
    return rc;
}

static int c_close(int fd)
{
    count(CH_CLOSE);
    gate(CH_CLOSE, fd);
    /* After the gate: the descriptor must still be the library's. */
    check_fd(CH_CLOSE, fd);
    perturb();
    /* Forget it before the number can be reused. */
    held(fd, FD_NONE);
    int rc = close(fd);
    int e = errno;
    perturb();
    errno = e;
    return rc;
}

const struct ssock__sys chaos_sys = {
    .socket = c_socket,
    .bind = c_bind,
    .listen = c_listen,
    .accept4 = c_accept4,
    .poll = c_poll,
    .recv = c_recv,
    .send = c_send,
    .shutdown = c_shutdown,
    .close = c_close,
};

int chaos_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}
