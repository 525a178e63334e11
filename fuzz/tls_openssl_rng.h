/*
 * The fixed random stream of tls_common.h, made OpenSSL's, so that the
 * OpenSSL target is deterministic and a recorded TLS session replays to
 * the end (static helpers, shared by fuzz_tls_openssl.c and tls_record.c;
 * include after tls_common.h).
 *
 * The library's hook for a per-config test RNG,
 * ssock__tls_config_set_test_rng(), cannot serve OpenSSL (why: the comment
 * on the OpenSSL backend table in src/tls_openssl.c). OpenSSL 3 still
 * honours a process-wide legacy RAND_METHOD: when one is installed,
 * RAND_bytes_ex() and RAND_priv_bytes_ex() (server random, session id,
 * ECDHE keys, ECDSA nonces) take their bytes from it, also inside the
 * default provider. The harness installs one that reads tls_common.h's
 * stream, which restarts at its seed for every input (tls_serve_one); the
 * server then answers a given ClientHello with the same bytes every time,
 * so a client flight recorded against it (fuzz/tls_record.c) still matches
 * on replay and the handshake completes.
 *
 * Test code only: the stream is predictable by design.
 */
#ifndef SSOCK_FUZZ_TLS_OPENSSL_RNG_H
#define SSOCK_FUZZ_TLS_OPENSSL_RNG_H

#ifndef SSOCK_FUZZ_TLS_COMMON_H
#error "include tls_common.h before tls_openssl_rng.h"
#endif

/* RAND_METHOD is deprecated in OpenSSL 3 but still works. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/rand.h>

#include <stdio.h>
#include <stdlib.h>

static int fuzz_rng_bytes(unsigned char *buf, int num)
{
    if (num > 0)
        tls_rng_fill(&T.rng, buf, (size_t)num);
    return 1;
}

static int fuzz_rng_seed(const void *buf, int num)
{
    (void)buf;
    (void)num;
    return 1;
}

static int fuzz_rng_add(const void *buf, int num, double entropy)
{
    (void)buf;
    (void)num;
    (void)entropy;
    return 1;
}

static int fuzz_rng_status(void)
{
    return 1;
}

static RAND_METHOD fuzz_rng_method = {
    fuzz_rng_seed, fuzz_rng_bytes, NULL,
    fuzz_rng_add,  fuzz_rng_bytes, fuzz_rng_status,
};

/* Install the method (once; after the fixture is built, so the SSL_CTX's
 * own secrets are real ones). The stream position is reset per input by
 * tls_serve_one. */
static void fuzz_rng_install(void)
{
    static int installed;
    if (!installed) {
        if (RAND_set_rand_method(&fuzz_rng_method) != 1) {
            fprintf(stderr, "fuzz_tls: RAND_set_rand_method failed\n");
            abort();
        }
        installed = 1;
    }
}

#endif /* SSOCK_FUZZ_TLS_OPENSSL_RNG_H */
