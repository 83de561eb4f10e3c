/* log.h: one line per event that matters, to stderr, at LOG_LEVEL or above.
 * Never per message. Any thread: each line is written with one write(2). */
#ifndef CHAT_LOG_H
#define CHAT_LOG_H

#include "config.h"

/* Sets the lowest level that is written. Call before threads start. */
void log_set_level(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
