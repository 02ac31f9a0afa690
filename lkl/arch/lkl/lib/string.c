// SPDX-License-Identifier: GPL-2.0
/*
 * memcpy(), memmove() and memset() with the string instructions of the
 * x86-64 host, which are the fast ones on every processor with ERMS (fast
 * "rep movsb"), as the x86 kernel's are.
 */
#include <linux/export.h>
#include <linux/string.h>

/**
 * memcpy() - copy non-overlapping memory
 * @dst: destination
 * @src: source
 * @n: number of bytes
 *
 * Return: @dst.
 */
void *memcpy(void *dst, const void *src, size_t n)
{
	void *d = dst;

	asm volatile("rep movsb"
		     : "+D" (d), "+S" (src), "+c" (n)
		     : : "memory");
	return dst;
}
EXPORT_SYMBOL(memcpy);

/**
 * memmove() - copy memory that may overlap
 * @dst: destination
 * @src: source
 * @n: number of bytes
 *
 * Return: @dst.
 */
void *memmove(void *dst, const void *src, size_t n)
{
	void *d;

	if (dst <= src || dst >= src + n)
		return memcpy(dst, src, n);
	/* Backwards, from the last byte. */
	d = dst + n - 1;
	src += n - 1;
	asm volatile("std\n\t"
		     "rep movsb\n\t"
		     "cld"
		     : "+D" (d), "+S" (src), "+c" (n)
		     : : "memory");
	return dst;
}
EXPORT_SYMBOL(memmove);

/**
 * memset() - fill memory with a byte
 * @s: the memory
 * @c: the byte
 * @n: number of bytes
 *
 * Return: @s.
 */
void *memset(void *s, int c, size_t n)
{
	void *d = s;

	asm volatile("rep stosb"
		     : "+D" (d), "+c" (n)
		     : "a" (c)
		     : "memory");
	return s;
}
EXPORT_SYMBOL(memset);
