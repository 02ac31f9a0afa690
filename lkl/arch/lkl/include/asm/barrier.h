/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_BARRIER_H
#define _ASM_LKL_BARRIER_H

/*
 * The CPUs of the library kernel are host threads on an x86-64 host, so
 * the host's memory model is the kernel's: total store order.  Loads are
 * not reordered with loads nor stores with stores, so only a full barrier
 * needs an instruction; acquire and release are compiler barriers.
 */
#ifndef __x86_64__
#error "ARCH=lkl runs on x86-64 hosts: the barriers below assume TSO"
#endif

#define __mb()		({ asm volatile("mfence" ::: "memory"); })
#define __rmb()		({ asm volatile("lfence" ::: "memory"); })
#define __wmb()		({ asm volatile("sfence" ::: "memory"); })

/* A locked add to the stack is a full barrier, and cheaper than mfence. */
#define __smp_mb()	({ asm volatile("lock addl $0,-4(%%rsp)" ::: "memory", "cc"); })
#define __smp_rmb()	barrier()
#define __smp_wmb()	barrier()

#define __smp_store_release(p, v)					\
do {									\
	typeof(p) ___p = (p);						\
									\
	compiletime_assert_atomic_type(*___p);				\
	barrier();							\
	WRITE_ONCE(*___p, v);						\
} while (0)

#define __smp_load_acquire(p)						\
({									\
	typeof(p) ___p = (p);						\
	__unqual_scalar_typeof(*___p) ___v = READ_ONCE(*___p);		\
									\
	compiletime_assert_atomic_type(*___p);				\
	barrier();							\
	(typeof(*___p))___v;						\
})

/* Atomic read-modify-writes are locked instructions: full barriers. */
#define __smp_mb__before_atomic()	barrier()
#define __smp_mb__after_atomic()	barrier()

#include <asm-generic/barrier.h>

#endif /* _ASM_LKL_BARRIER_H */
