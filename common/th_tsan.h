/* SPDX-License-Identifier: Apache-2.0 */
/*
 * th_tsan.h: telling ThreadSanitizer about orderings it cannot see.
 *
 * liburcu (Debian's 0.13) publishes pointers with rcu_assign_pointer() and
 * reads them with rcu_dereference(): a release store and a dependent load,
 * but written in inline assembly, so TSan sees a plain write in one thread
 * and a plain read in another and reports a race that is not there.
 * TH_TSAN_RELEASE(obj) just before publishing obj and TH_TSAN_ACQUIRE(obj)
 * just after looking it up state the happens-before edge that liburcu
 * really provides. Without TSan both are nothing.
 */
#ifndef TH_TSAN_H
#define TH_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define TH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TH_TSAN 1
#endif
#endif

#ifdef TH_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define TH_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define TH_TSAN_RELEASE(p) __tsan_release((void *)(p))
#else
#define TH_TSAN_ACQUIRE(p) ((void)(p))
#define TH_TSAN_RELEASE(p) ((void)(p))
#endif

#endif
