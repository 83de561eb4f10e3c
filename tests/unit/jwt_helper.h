/* jwt_helper.h: makes HS256 tokens for tests, independently of ws/auth.c. */
#ifndef CHAT_TEST_JWT_HELPER_H
#define CHAT_TEST_JWT_HELPER_H

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

static inline size_t test_b64url(const unsigned char *in, size_t n, char *out)
{
    unsigned char tmp[4096];
    int len = EVP_EncodeBlock(tmp, in, (int)n);
    size_t w = 0;
    for (int i = 0; i < len; i++) {
        char c = (char)tmp[i];
        if (c == '=')
            break;
        out[w++] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    out[w] = '\0';
    return w;
}

/* Signs header.payload (JSON texts) with secret into out. */
static inline void test_jwt(const char *header, const char *payload, const char *secret, char *out)
{
    size_t n = test_b64url((const unsigned char *)header, strlen(header), out);
    out[n++] = '.';
    n += test_b64url((const unsigned char *)payload, strlen(payload), out + n);
    unsigned char mac[64];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)out, n, mac, &mac_len);
    out[n++] = '.';
    test_b64url(mac, mac_len, out + n);
}

#endif
