/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_CMPXCHG_H
#define _ASM_LKL_CMPXCHG_H

#include <linux/compiler.h>

/*
 * Exchange and compare-and-exchange on 1, 2, 4 and 8 bytes: the compiler's
 * sequentially consistent atomics, locked instructions on x86-64, which is
 * what the kernel asks of xchg() and cmpxchg() (fully ordered) on SMP.
 */
#define arch_xchg(ptr, x)						\
	__atomic_exchange_n((ptr), (x), __ATOMIC_SEQ_CST)

#define arch_cmpxchg(ptr, o, n)						\
({									\
	typeof(ptr) __ptr = (ptr);					\
	__unqual_scalar_typeof(*__ptr) __old = (o);			\
									\
	__atomic_compare_exchange_n(__ptr, &__old, (n), false,		\
				    __ATOMIC_SEQ_CST,			\
				    __ATOMIC_SEQ_CST);			\
	__old;								\
})

#define arch_cmpxchg_local(ptr, o, n)	arch_cmpxchg((ptr), (o), (n))
#define arch_cmpxchg64(ptr, o, n)	arch_cmpxchg((ptr), (o), (n))
#define arch_cmpxchg64_local(ptr, o, n)	arch_cmpxchg((ptr), (o), (n))

#endif /* _ASM_LKL_CMPXCHG_H */
