/* SPDX-License-Identifier: Apache-2.0 */
/*
 * th_atomic.h: the only place topohub spells memory ordering.
 *
 * Thin names over C11 <stdatomic.h> _explicit operations, so that every call
 * site shows its ordering in a word and reviewers can grep for them. The rule
 * (STYLE.md): each acquire, release or fence in the code carries a comment that
 * names the access on the other side it pairs with.
 *
 * Objects in shared memory are declared with the th_atomic_* types below; they
 * are lock-free on every platform we build for (checked at compile time), which
 * is what makes them usable across processes.
 */
#ifndef TH_ATOMIC_H
#define TH_ATOMIC_H

#include <stdatomic.h>
#include <stdint.h>

typedef _Atomic uint64_t th_atomic_u64;
typedef _Atomic uint32_t th_atomic_u32;

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free for shared memory");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free for shared memory");

#define th_load_relaxed(p)        atomic_load_explicit((p), memory_order_relaxed)
#define th_load_acquire(p)        atomic_load_explicit((p), memory_order_acquire)
#define th_load_seq_cst(p)        atomic_load_explicit((p), memory_order_seq_cst)
#define th_store_relaxed(p, v)    atomic_store_explicit((p), (v), memory_order_relaxed)
#define th_store_release(p, v)    atomic_store_explicit((p), (v), memory_order_release)
#define th_store_seq_cst(p, v)    atomic_store_explicit((p), (v), memory_order_seq_cst)
#define th_exchange_seq_cst(p, v) atomic_exchange_explicit((p), (v), memory_order_seq_cst)
#define th_fetch_add_relaxed(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define th_fetch_add_release(p, v) atomic_fetch_add_explicit((p), (v), memory_order_release)
#define th_fetch_or_relaxed(p, v) atomic_fetch_or_explicit((p), (v), memory_order_relaxed)
#define th_fence_acquire()        atomic_thread_fence(memory_order_acquire)
#define th_fence_release()        atomic_thread_fence(memory_order_release)
#define th_fence_seq_cst()        atomic_thread_fence(memory_order_seq_cst)

/* A pause for spin loops: lets the sibling hyperthread run, saves power. */
static inline void th_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

#define TH_CACHELINE 64

#endif
