/*
 * Shared by the fuzz harnesses and the replay driver: the libFuzzer entry
 * point's prototype (each harness defines it, and nothing else with
 * external linkage) and small static helpers.
 */
#ifndef SSOCK_FUZZ_H
#define SSOCK_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* SSOCK_FUZZ_H */
