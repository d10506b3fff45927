/* machine.h - `coldclone clone --all`: every disk of the machine in one job, one image per
 * disk named after the machine, a machine manifest with the hardware inventory, and VM
 * descriptors beside the images. */
#ifndef COLDCLONE_MACHINE_H
#define COLDCLONE_MACHINE_H

#include "clonejob.h"

/* Returns an EXIT_* code: the worst of the disks'. */
int machine_clone(const struct clone_opts *o);

#endif
