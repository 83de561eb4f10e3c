/* hex.h: one hexadecimal digit's value, for the parsers that decode %XX and
 * \uXXXX. Pure. */
#ifndef CHAT_HEX_H
#define CHAT_HEX_H

/* The value of c as a hexadecimal digit, or -1. */
static inline int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
