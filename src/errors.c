/* Error codes: the text and name of every status (one table in ssock.h). */
#include <errno.h>
#include <string.h>

#include "internal.h"

const char *ssock_version_string(void)
{
    return SSOCK_VERSION_STRING;
}

unsigned ssock_version(void)
{
    return SSOCK_VERSION_HEX;
}

const char *ssock_strerror(int status)
{
    if (status == 0)
        return "success";
    switch (status) {
#define SSOCK__ERR_MSG(name, value, msg)                                       \
    case SSOCK_##name:                                                         \
        return msg;
        SSOCK_ERROR_MAP(SSOCK__ERR_MSG)
#undef SSOCK__ERR_MSG
    default:
        break;
    }
    if (status < 0 && status > -4096) {
        /* glibc >= 2.32: a constant string, no buffer, thread-safe. */
        const char *d = strerrordesc_np(-status);
        if (d != NULL)
            return d;
    }
    return "unknown error";
}

const char *ssock_err_name(int status)
{
    if (status == 0)
        return "SSOCK_OK";
    switch (status) {
#define SSOCK__ERR_NAME(name, value, msg)                                      \
    case SSOCK_##name:                                                         \
        return "SSOCK_" #name;
        SSOCK_ERROR_MAP(SSOCK__ERR_NAME)
#undef SSOCK__ERR_NAME
    default:
        break;
    }
    if (status < 0 && status > -4096) {
        const char *n = strerrorname_np(-status);
        if (n != NULL)
            return n;
    }
    return "UNKNOWN";
}

ssock_err_class ssock_err_classify(int status)
{
    switch (status) {
    case 0:
        return SSOCK_ERRCLASS_OK;
    case SSOCK_ETIMEOUT:
    case SSOCK_EAGAIN:
    case SSOCK_ENOMEM:
    case -EINTR:
    case -EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case -EWOULDBLOCK:
#endif
    case -EMFILE:
    case -ENFILE:
    case -ENOBUFS:
    case -ENOMEM:
    case -ECONNABORTED:
        return SSOCK_ERRCLASS_RETRY;
    case SSOCK_EOF:
    case SSOCK_ETRUNCATED:
    case SSOCK_ETLS:
    case SSOCK_EBROKEN:
    case SSOCK_EPROXY:
    case -ECONNRESET:
    case -EPIPE:
    case -ETIMEDOUT:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -ENETDOWN:
    case -EHOSTDOWN:
    case -ECONNREFUSED:
    case -ENOTCONN:
    case -EPROTO:
        return SSOCK_ERRCLASS_PEER;
    case SSOCK_ECLOSED:
    case SSOCK_ESERVERCLOSED:
        return SSOCK_ERRCLASS_CLOSED;
    case SSOCK_EINVAL:
    case SSOCK_EBADPORT:
    case SSOCK_EBADTIMEOUT:
    case SSOCK_EBADBACKLOG:
    case SSOCK_EBADADDR:
    case SSOCK_ERESOLVE:
    case SSOCK_ENOBACKEND:
    case SSOCK_EFILE:
    case SSOCK_ECERTPARSE:
    case SSOCK_EKEYMISMATCH:
    case SSOCK_ECERTTIME:
    case SSOCK_EVERSION:
    case SSOCK_ETLSCONFIG:
    case SSOCK_ENOTTLS:
    case SSOCK_ENOTSUP:
    case SSOCK_ENOTLISTENING:
    case -EADDRINUSE:
    case -EADDRNOTAVAIL:
    case -EACCES:
    case -EPERM:
    case -EAFNOSUPPORT:
    case -EINVAL:
        return SSOCK_ERRCLASS_USAGE;
    default:
        return SSOCK_ERRCLASS_SYSTEM;
    }
}

int ssock_err_is_transient(int status)
{
    return ssock_err_classify(status) == SSOCK_ERRCLASS_RETRY;
}
