/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_PGTABLE_H
#define _ASM_LKL_PGTABLE_H

/* pgd_t first: the folded levels are defined in terms of it. */
#include <asm/page.h>
#include <asm-generic/pgtable-nopud.h>

/* No MMU: the generic folded page tables are all there is. */
#define PAGE_NONE		__pgprot(0)
#define PAGE_SHARED		__pgprot(0)
#define PAGE_COPY		__pgprot(0)
#define PAGE_READONLY		__pgprot(0)
#define PAGE_KERNEL		__pgprot(0)

#define swapper_pg_dir		((pgd_t *)0)

extern void *empty_zero_page;
#define ZERO_PAGE(vaddr)	((void)(vaddr), virt_to_page(empty_zero_page))

#define VMALLOC_START		0
#define VMALLOC_END		(~0UL)
#define KMAP_START		0
#define KMAP_END		(~0UL)

#endif /* _ASM_LKL_PGTABLE_H */
