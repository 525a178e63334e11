/*
 * The TLS acceptor with the mbedTLS backend: the input is everything a
 * client sends to a real ssock TLS server (see tls_common.h).
 */
#include "fuzz.h"

#define FUZZ_TLS_BACKEND SSOCK_TLS_BACKEND_MBEDTLS
#include "tls_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tls_fuzz_one(data, size);
    return 0;
}
