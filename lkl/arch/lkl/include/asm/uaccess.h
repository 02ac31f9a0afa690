/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_UACCESS_H
#define _ASM_LKL_UACCESS_H

#include <linux/compiler.h>
#include <linux/string.h>

/*
 * "User" memory is the host program's memory.  Without an MMU nothing
 * stops a bad pointer, so every user copy goes through the host, which
 * copies without faulting, and refuses ranges that overlap the kernel's
 * own memory as a real kernel's access_ok() refuses kernel addresses.
 * The generic get_user()/put_user(), strncpy_from_user(), strnlen_user()
 * and copy_struct_from_user() are all built on these two.
 */
unsigned long lkl_copy_from_user(void *to, const void __user *from,
				 unsigned long n);
unsigned long lkl_copy_to_user(void __user *to, const void *from,
			       unsigned long n);

static inline __must_check unsigned long
raw_copy_from_user(void *to, const void __user *from, unsigned long n)
{
	return lkl_copy_from_user(to, from, n);
}

static inline __must_check unsigned long
raw_copy_to_user(void __user *to, const void *from, unsigned long n)
{
	return lkl_copy_to_user(to, from, n);
}

#define INLINE_COPY_FROM_USER
#define INLINE_COPY_TO_USER

unsigned long lkl_clear_user(void __user *to, unsigned long n);
unsigned long lkl_copy_nofault(void *to, const void *from, unsigned long n);
#define __clear_user lkl_clear_user

#define __get_kernel_nofault(dst, src, type, err_label)			\
do {									\
	if (lkl_copy_nofault((dst), (src), sizeof(type)))		\
		goto err_label;						\
} while (0)

#define __put_kernel_nofault(dst, src, type, err_label)			\
do {									\
	if (lkl_copy_nofault((dst), (src), sizeof(type)))		\
		goto err_label;						\
} while (0)

#include <asm-generic/uaccess.h>

#endif /* _ASM_LKL_UACCESS_H */
