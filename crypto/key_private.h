#ifndef AULAC_CRYPTO_KEY_PRIVATE_H
#define AULAC_CRYPTO_KEY_PRIVATE_H
/* The inside of struct crypto_key, shared by the .c files of crypto/ only. */
#include <sodium.h>

#include "crypto/keys.h"

struct crypto_key {
    char id[CRYPTO_ID_MAX + 1];
    uint8_t public_key[crypto_sign_PUBLICKEYBYTES];
    uint8_t *secret;   /* sodium_malloc'd crypto_sign_SECRETKEYBYTES (seed ‖ public key) */
};

#endif
