/* upstream.c - placeholder */
#include "upstream.h"
