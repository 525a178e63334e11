/*
 * A fixed random number stream for OpenSSL, so that the OpenSSL target is
 * deterministic and a recorded TLS session replays to the end (static
 * helpers, shared by fuzz_tls_openssl.c and tls_record.c).
 *
 * The library gives a test no way to seed its backends (see
 * fuzz/README.md). OpenSSL 3 still honours a process-wide legacy
 * RAND_METHOD: when one is installed, RAND_bytes_ex() and
 * RAND_priv_bytes_ex() (server random, session id, ECDHE keys, ECDSA
 * nonces) take their bytes from it, also inside the default provider. The
 * harness installs one and restarts its stream at the start of every input;
 * the server then answers a given ClientHello with the same bytes every
 * time, so a client flight recorded against it (fuzz/tls_record.c) still
 * matches on replay and the handshake completes.
 *
 * Test code only: the stream is predictable by design.
 */
#ifndef SSOCK_FUZZ_TLS_OPENSSL_RNG_H
#define SSOCK_FUZZ_TLS_OPENSSL_RNG_H

/* RAND_METHOD is deprecated in OpenSSL 3 but still works. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/rand.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_RNG_SEED 0x5eed5eed5eed5eedull

static uint64_t fuzz_rng_state = FUZZ_RNG_SEED;

/* splitmix64: fast, and good enough to keep OpenSSL's checks happy. */
static uint64_t fuzz_rng_next(void)
{
    uint64_t z = (fuzz_rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int fuzz_rng_bytes(unsigned char *buf, int num)
{
    for (int i = 0; i < num; i += 8) {
        uint64_t v = fuzz_rng_next();
        for (int j = 0; j < 8 && i + j < num; j++)
            buf[i + j] = (unsigned char)(v >> (8 * j));
    }
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

/* Install the stream (once) and restart it at the seed. */
static void fuzz_rng_reset(void)
{
    static int installed;
    if (!installed) {
        if (RAND_set_rand_method(&fuzz_rng_method) != 1) {
            fprintf(stderr, "fuzz_tls: RAND_set_rand_method failed\n");
            abort();
        }
        installed = 1;
    }
    fuzz_rng_state = FUZZ_RNG_SEED;
}

#endif /* SSOCK_FUZZ_TLS_OPENSSL_RNG_H */
