// SPDX-License-Identifier: GPL-2.0
/*
 * memcpy(), memmove() and memset() with the string instructions of the
 * x86-64 host, which are the fast ones on every processor with ERMS (fast
 * "rep movsb"), as the x86 kernel's are.
 *
 * Each is defined as its unchecked __ name, and the plain name is a weak
 * alias: with KASAN, mm/kasan's checked versions take the plain names.
 * Only the __ names are exported: the plain ones belong to whichever
 * definition wins, and this kernel has no modules.
 */
#include <linux/export.h>
#include <linux/string.h>

/**
 * __memcpy() - copy non-overlapping memory
 * @dst: destination
 * @src: source
 * @n: number of bytes
 *
 * Return: @dst.
 */
void *__memcpy(void *dst, const void *src, size_t n)
{
	void *d = dst;

	asm volatile("rep movsb"
		     : "+D" (d), "+S" (src), "+c" (n)
		     : : "memory");
	return dst;
}
EXPORT_SYMBOL(__memcpy);
void *(memcpy)(void *dst, const void *src, size_t n) __weak __alias(__memcpy);

/**
 * __memmove() - copy memory that may overlap
 * @dst: destination
 * @src: source
 * @n: number of bytes
 *
 * Return: @dst.
 */
void *__memmove(void *dst, const void *src, size_t n)
{
	void *d;

	if (dst <= src || dst >= src + n)
		return __memcpy(dst, src, n);
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
EXPORT_SYMBOL(__memmove);
void *(memmove)(void *dst, const void *src, size_t n) __weak __alias(__memmove);

/**
 * __memset() - fill memory with a byte
 * @s: the memory
 * @c: the byte
 * @n: number of bytes
 *
 * Return: @s.
 */
void *__memset(void *s, int c, size_t n)
{
	void *d = s;

	asm volatile("rep stosb"
		     : "+D" (d), "+c" (n)
		     : "a" (c)
		     : "memory");
	return s;
}
EXPORT_SYMBOL(__memset);
void *(memset)(void *s, int c, size_t n) __weak __alias(__memset);
