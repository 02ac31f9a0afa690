// SPDX-License-Identifier: GPL-2.0
/*
 * User memory access.  "User" memory is any memory of the host program
 * outside the kernel's own; the host copies without faulting, so a bad
 * pointer from a test gives -EFAULT instead of killing the process.
 */
#include <linux/uaccess.h>
#include <asm/cpu.h>

/**
 * lkl_copy_from_user() - copy from host memory the kernel does not own
 * @to: kernel destination
 * @from: user source, which may be invalid
 * @n: number of bytes
 *
 * Return: the number of bytes not copied.
 */
unsigned long lkl_copy_from_user(void *to, const void __user *from,
				 unsigned long n)
{
	if (!n)
		return 0;
	if (lkl_addr_in_kernel((unsigned long)from, n))
		return n;
	return lkl_ops->copy_from_user(to, (const void __force *)from, n);
}

/**
 * lkl_copy_to_user() - copy to host memory the kernel does not own
 * @to: user destination, which may be invalid
 * @from: kernel source
 * @n: number of bytes
 *
 * Return: the number of bytes not copied.
 */
unsigned long lkl_copy_to_user(void __user *to, const void *from,
			       unsigned long n)
{
	if (!n)
		return 0;
	if (lkl_addr_in_kernel((unsigned long)to, n))
		return n;
	return lkl_ops->copy_to_user((void __force *)to, from, n);
}

/**
 * lkl_clear_user() - zero user memory
 * @to: user destination, which may be invalid
 * @n: number of bytes
 *
 * Return: the number of bytes not cleared.
 */
unsigned long lkl_clear_user(void __user *to, unsigned long n)
{
	static const char zeroes[256];
	unsigned long done = 0;

	while (done < n) {
		unsigned long chunk = min_t(unsigned long, n - done,
					    sizeof(zeroes));
		unsigned long left;

		left = lkl_copy_to_user((char __user *)to + done, zeroes,
					chunk);
		if (left)
			return n - done - (chunk - left);
		done += chunk;
	}
	return 0;
}

/**
 * lkl_copy_nofault() - copy kernel memory that may not be mapped
 * @to: destination
 * @from: source
 * @n: number of bytes
 *
 * Return: the number of bytes not copied.
 */
unsigned long lkl_copy_nofault(void *to, const void *from, unsigned long n)
{
	return lkl_ops->copy_from_user(to, from, n);
}
