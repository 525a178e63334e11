/* A system-call table (struct ssock__sys, src/internal.h) for race
 * exploration and for deterministic interleavings.
 *
 * Chaos: when enabled, every entry, before and/or after calling the real
 * function, randomly does nothing, sched_yield()s or sleeps 0-2 ms. The
 * randomness is a per-thread xorshift seeded from the run seed and the
 * thread's role (chaos_role()), so a failing seed can be replayed.
 *
 * Gate: a one-shot hook that blocks the next matching call (kind, and the
 * descriptor when given) before the real function runs, until the test
 * releases it; the test waits until a thread reached it. So an interleaving
 * that needs "thread B is inside close_notify's send()" happens every run.
 *
 * Descriptor check: the table remembers which descriptors the library got
 * from socket()/accept4() and has not closed; a recv/send/shutdown/close
 * on any other descriptor (a stale number, possibly reused by another
 * connection) is counted as a violation.
 *
 * All state is process-wide (one test at a time) and thread-safe. */
#ifndef SSOCK_TESTS_CHAOS_H
#define SSOCK_TESTS_CHAOS_H

#include <stdint.h>

#include "internal.h"

enum chaos_call {
    CH_SOCKET,
    CH_BIND,
    CH_LISTEN,
    CH_ACCEPT4,
    CH_POLL,
    CH_RECV,
    CH_SEND,
    CH_SHUTDOWN,
    CH_CLOSE,
    CH_NCALLS
};

/* The table. */
extern const struct ssock__sys chaos_sys;

/* Reset everything: chaos off, gate disarmed, counters and the descriptor
 * record cleared. Call with no library call running. */
void chaos_reset(void);

/* Chaos on (with this run seed) or off. Threads reseed on their next call. */
void chaos_start(uint64_t seed);
void chaos_stop(void);
/* Name the calling thread's role (0..): its stream is seed ^ f(role). */
void chaos_role(int role);
/* The run's random stream for the test itself (delays, choices). */
uint64_t chaos_rand(void);

/* Arm the gate: the next call of `kind` on `fd` (-1: any descriptor, but
 * never the listening one) blocks before the real call. */
void chaos_gate_arm(enum chaos_call kind, int fd);
/* 1 once a thread is held at the gate, 0 after timeout_ms. */
int chaos_gate_reached(int timeout_ms);
/* Let the held thread go (or disarm an unreached gate). */
void chaos_gate_release(void);

/* Descriptors accepted by the library, in order (-1 past the end). */
int chaos_accepted_fd(int i);
/* Calls through the table, of one kind. */
long chaos_count(enum chaos_call kind);
/* Calls on descriptors the library did not hold (see above), and the first
 * such (kind << 16 | fd), or 0. */
long chaos_stale_calls(void);
long chaos_first_stale(void);

/* Open descriptors of this process (/proc/self/fd), or -1. */
int chaos_fd_count(void);

#endif
