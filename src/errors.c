/* Error codes: the text and name of every status (one table in ssock.h). */
#include <errno.h>
#include <string.h>

#include "internal.h"

const char *ssock_version_string(void)
{
    return SSOCK_VERSION_STRING;
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
