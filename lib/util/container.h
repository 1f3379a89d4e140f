/* Forwards to the public tether/container.h for lib/ modules that include
 * it by its old path; new code includes "tether/container.h". */
#include "tether/container.h"
