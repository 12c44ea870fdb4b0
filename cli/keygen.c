#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fileio.h"
#include "crypto/keys.h"

static const char usage[] =
    "usage: aulac keygen --id ID [--dir DIR] [--force]\n"
    "\n"
    "Makes an Ed25519 key pair: DIR/ID.key (secret, mode 0600) and DIR/ID.pub. The\n"
    "public key goes into the alliance roster; the secret key never leaves the member.\n"
    "\n"
    "  --id ID     member id (1..64 of [a-z0-9._-]), or e.g. 'coordinator'\n"
    "  --dir DIR   where to write the files (default: current directory)\n"
    "  --force     replace an existing secret key file\n";

int cmd_keygen(int argc, char **argv)
{
    const char *id = NULL, *dir = ".";
    int force = 0, ch;
    static const struct option lo[] = {
        { "id", required_argument, 0, 'i' }, { "dir", required_argument, 0, 'd' },
        { "force", no_argument, 0, 'f' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'i': id = optarg; break;
        case 'd': dir = optarg; break;
        case 'f': force = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!id)
        return cli_usage_error("keygen", usage, "--id is required");
    if (!crypto_id_valid(id))
        return cli_usage_error("keygen", usage, "'%s' is not a valid id (1..64 of [a-z0-9._-], "
                               "starting with a letter or digit)", id);
    int rc = file_mkdirs(dir, 0700);
    if (rc != 0)
        return cli_fail("keygen", "cannot create %s: %s", dir, strerror(-rc));
    struct crypto_key *k;
    if ((rc = crypto_key_generate(id, &k)) != 0)
        return cli_fail("keygen", "%s", crypto_strerror(rc));
    char sec[PATH_MAX], pub[PATH_MAX];
    snprintf(sec, sizeof sec, "%s/%s.key", dir, id);
    snprintf(pub, sizeof pub, "%s/%s.pub", dir, id);
    rc = crypto_key_save_secret(k, sec, force);
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    crypto_key_free(k);
    if (rc != 0)
        return cli_fail("keygen", "%s: %s%s", sec, crypto_strerror(rc),
                        rc == CRYPTO_ERR_KEY_EXISTS ? " (use --force to replace it)" : "");
    if ((rc = crypto_public_key_save(&pk, pub)) != 0)
        return cli_fail("keygen", "%s: %s", pub, crypto_strerror(rc));
    char b64[45];
    crypto_public_key_to_base64(pk.key, b64);
    printf("id: %s\nkey-id: %s\nsecret key: %s (mode 0600)\npublic key: %s\npublic_key: %s\n",
           id, pk.key_id, sec, pub, b64);
    return 0;
}
