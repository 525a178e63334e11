/* The default system-call table: the real functions, nothing else. */
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

static int sys_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    return accept4(fd, sa, len, flags);
}

const struct ssock__sys ssock__sys_default = {
    .socket = socket,
    .bind = bind,
    .listen = listen,
    .accept4 = sys_accept4,
    .poll = poll,
    .recv = recv,
    .send = send,
    .shutdown = shutdown,
    .close = close,
};
