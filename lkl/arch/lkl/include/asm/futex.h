/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_FUTEX_H
#define _ASM_LKL_FUTEX_H

#include <linux/futex.h>
#include <linux/types.h>

/*
 * Futex words live in host memory, which other CPUs (host threads) change
 * at the same time: the operations are host atomics, done by the host so
 * that a bad address gives -EFAULT.
 */
int lkl_futex_cmpxchg(u32 *uval, u32 __user *uaddr, u32 oldval, u32 newval);
int lkl_futex_atomic_op(int op, u32 oparg, int *oval, u32 __user *uaddr);

#define futex_atomic_cmpxchg_inatomic(uval, uaddr, oldval, newval)	\
	lkl_futex_cmpxchg((uval), (uaddr), (oldval), (newval))
#define arch_futex_atomic_op_inuser(op, oparg, oval, uaddr)		\
	lkl_futex_atomic_op((op), (oparg), (oval), (uaddr))

#include <asm-generic/futex.h>

#endif /* _ASM_LKL_FUTEX_H */
