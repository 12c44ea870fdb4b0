#ifndef AULAC_COMMON_TIMEUTIL_H
#define AULAC_COMMON_TIMEUTIL_H
#include <stdint.h>

int64_t time_now_unix_ms(void);   /* wall clock, for deadlines and records */
int64_t time_mono_ms(void);       /* monotonic, for measuring and waiting */
double  time_mono_s(void);
void    time_sleep_ms(int64_t ms);

#endif
