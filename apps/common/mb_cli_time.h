/* Clocks for progress lines and ETAs. */
#ifndef MB_CLI_TIME_H
#define MB_CLI_TIME_H

#include <stddef.h>

double mb_cli_now(void); /* monotonic seconds */
/* "42s", "3m05s", "2h07m", "3d04h"; "?" for a negative or absurd time */
void mb_cli_duration(double seconds, char *buf, size_t n);

#endif
