/* Monotonic deadlines, poll() with EINTR handled, and the wake descriptor. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

uint64_t ssock__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

ssock__deadline ssock__deadline_in(int timeout_ms)
{
    if (timeout_ms <= SSOCK_WAIT_FOREVER)
        return 0;
    return ssock__now_ns() + (uint64_t)timeout_ms * 1000000u;
}

int ssock__deadline_poll_ms(ssock__deadline d)
{
    if (d == 0)
        return -1;
    uint64_t now = ssock__now_ns();
    if (now >= d)
        return 0;
    uint64_t left = (d - now + 999999u) / 1000000u; /* round up */
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

int ssock__deadline_expired(ssock__deadline d)
{
    return d != 0 && ssock__now_ns() >= d;
}

int ssock__poll(const struct ssock__sys *sys, struct pollfd *fds, nfds_t n,
                ssock__deadline d)
{
    for (;;) {
        int ms = ssock__deadline_poll_ms(d);
        int rc = sys->poll(fds, n, ms);
        if (rc > 0)
            return rc;
        if (rc == 0) {
            /* poll's clock and ours may disagree by a tick: wait out the
             * rest so that no wait ends before its deadline. */
            if (d == 0 || ssock__deadline_expired(d))
                return 0;
            continue;
        }
        if (errno != EINTR && errno != EAGAIN)
            return -errno;
    }
}

int ssock__wake_open(struct ssock__wake *w)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd >= 0) {
        w->rd = w->wr = fd;
        return 0;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
        return -errno;
    w->rd = p[0];
    w->wr = p[1];
    return 0;
}

void ssock__wake_signal(const struct ssock__wake *w)
{
    uint64_t one = 1;
    ssize_t rc;
    do {
        rc = write(w->wr, &one, w->rd == w->wr ? sizeof(one) : 1);
    } while (rc < 0 && errno == EINTR);
    /* EAGAIN means it is already signalled: nothing more to do. */
}

void ssock__wake_close(struct ssock__wake *w)
{
    if (w->rd >= 0)
        close(w->rd);
    if (w->wr >= 0 && w->wr != w->rd)
        close(w->wr);
    w->rd = w->wr = -1;
}
