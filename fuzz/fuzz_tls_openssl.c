/*
 * The TLS acceptor with the OpenSSL backend: the input is everything a
 * client sends to a real ssock TLS server (see tls_common.h). OpenSSL's
 * random numbers come from the harness's fixed stream, restarted for every
 * input, through a process-wide RAND_METHOD (tls_openssl_rng.h: the
 * library's per-config test RNG hook cannot serve OpenSSL), so recorded
 * full sessions (seeds sess-*) complete their handshake and reach the
 * read/echo/close part.
 */
#include "fuzz.h"

#define FUZZ_TLS_BACKEND SSOCK_TLS_BACKEND_OPENSSL
#include "tls_common.h"
#include "tls_openssl_rng.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tls_fixtures(); /* built once, before the fixed stream is installed */
    fuzz_rng_install();
    tls_fuzz_one(data, size);
    return 0;
}
