// SPDX-License-Identifier: GPL-2.0
/*
 * User memory access.  "User" memory is any memory of the host program
 * outside the kernel's own; the host copies without faulting, so a bad
 * pointer from a test gives -EFAULT instead of killing the process.
 */
#include <linux/mutex.h>
#include <linux/futex.h>
#include <linux/uaccess.h>
#include <asm/futex.h>
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

/**
 * lkl_futex_cmpxchg() - compare-and-exchange a futex word
 * @uval: the value found at @uaddr
 * @uaddr: the futex word, in user memory
 * @oldval: the value to replace
 * @newval: the new value
 *
 * Return: 0, or -EFAULT if the word cannot be read and written.
 */
int lkl_futex_cmpxchg(u32 *uval, u32 __user *uaddr, u32 oldval, u32 newval)
{
	u32 expected = oldval;

	if (lkl_addr_in_kernel((unsigned long)uaddr, sizeof(*uaddr)))
		return -EFAULT;
	if (lkl_ops->user_cmpxchg32((u32 __force *)uaddr, &expected, newval))
		return -EFAULT;
	*uval = expected;
	return 0;
}

/**
 * lkl_futex_atomic_op() - the atomic operation of FUTEX_WAKE_OP
 * @op: FUTEX_OP_SET, _ADD, _OR, _ANDN or _XOR
 * @oparg: its operand
 * @oval: the word's value before the operation
 * @uaddr: the futex word, in user memory
 *
 * Return: 0, -EFAULT for a bad word, or -ENOSYS for an unknown @op.
 */
int lkl_futex_atomic_op(int op, u32 oparg, int *oval, u32 __user *uaddr)
{
	u32 old, new, found;
	int ret;

	if (lkl_copy_from_user(&old, uaddr, sizeof(old)))
		return -EFAULT;
	for (;;) {
		switch (op) {
		case FUTEX_OP_SET:
			new = oparg;
			break;
		case FUTEX_OP_ADD:
			new = old + oparg;
			break;
		case FUTEX_OP_OR:
			new = old | oparg;
			break;
		case FUTEX_OP_ANDN:
			new = old & ~oparg;
			break;
		case FUTEX_OP_XOR:
			new = old ^ oparg;
			break;
		default:
			return -ENOSYS;
		}
		ret = lkl_futex_cmpxchg(&found, uaddr, old, new);
		if (ret)
			return ret;
		if (found == old)
			break;
		old = found;
	}
	*oval = old;
	return 0;
}
