#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/hex.h"
#include "ledger/entry.h"
#include "ledger/ledger.h"

static const char usage[] =
    "usage: aulac ledger show   --data-dir DIR [--from N] [--to M] [--json]\n"
    "       aulac ledger verify --data-dir DIR\n"
    "\n"
    "show    prints entries N..M (default: all): one line each, or JSON lines\n"
    "verify  recomputes every leaf hash from the stored entry bytes and every subtree\n"
    "        hash up to the root (RFC 6962); names the first bad index if any\n"
    "\n"
    "The data directory may belong to a running coordinator: it is opened read-only.\n";

static int open_ro(const char *dir, struct ledger **l)
{
    struct ledger_options o = { .read_only = 1 };
    int rc = ledger_open(dir, &o, l);
    if (rc != 0)
        return cli_fail("ledger", "cannot open the ledger in %s: %s", dir, ledger_strerror(rc));
    return 0;
}

static int show(struct ledger *l, uint64_t from, uint64_t to, int json)
{
    uint64_t size;
    if (ledger_size(l, &size) != 0)
        return cli_fail("ledger", "cannot read the ledger size");
    if (to == UINT64_MAX || to >= size)
        to = size ? size - 1 : 0;
    int bad = 0;
    for (uint64_t i = from; size && i <= to; i++) {
        uint8_t *bytes;
        size_t len;
        if (ledger_get(l, i, &bytes, &len) != 0) {
            bad = cli_fail("ledger", "entry %" PRIu64 " is missing", i);
            break;
        }
        struct entry e;
        int rc = entry_decode(bytes, len, &e);
        free(bytes);
        if (rc != 0) {
            if (json)
                printf("{\"index\":%" PRIu64 ",\"error\":\"%s\"}\n", i, ledger_strerror(rc));
            else
                printf("#%-6" PRIu64 " undecodable entry: %s\n", i, ledger_strerror(rc));
            bad = 1;
            continue;
        }
        if (json) {
            char *j = entry_to_json(&e);
            if (j && j[0] == '{')
                printf("{\"index\":%" PRIu64 ",%s\n", i, j + 1);
            free(j);
        } else {
            char line[1024];
            entry_describe(&e, line, sizeof line);
            printf("#%-6" PRIu64 " %s\n", i, line);
        }
        entry_free(&e);
    }
    return bad;
}

static void verify_progress(uint64_t done, uint64_t total, void *arg)
{
    (void)arg;
    if (total >= 100000)
        fprintf(stderr, "\rverifying: %" PRIu64 " / %" PRIu64, done, total);
    if (total >= 100000 && done == total)
        fputc('\n', stderr);
}

static int verify(struct ledger *l, const char *dir)
{
    uint64_t bad = 0, size = 0;
    uint8_t root[32];
    int rc = ledger_verify_all(l, &bad, verify_progress, NULL, &size, root);
    if (rc == LEDGER_ERR_CORRUPT) {
        printf("ledger %s: FAILED at entry %" PRIu64 ": its stored bytes do not match the "
               "Merkle tree (edited or damaged)\n", dir, bad);
        return 1;
    }
    if (rc != 0)
        return cli_fail("ledger", "verify: %s", ledger_strerror(rc));
    for (uint64_t i = 0; i < size; i++) {
        uint8_t *bytes;
        size_t len;
        struct entry e;
        if (ledger_get(l, i, &bytes, &len) != 0)
            return cli_fail("ledger", "entry %" PRIu64 " is missing", i);
        rc = entry_decode(bytes, len, &e);
        free(bytes);
        if (rc != 0) {
            printf("ledger %s: FAILED at entry %" PRIu64 ": %s\n", dir, i, ledger_strerror(rc));
            return 1;
        }
        entry_free(&e);
    }
    char hex[65];
    hex_encode(root, 32, hex);
    printf("ledger %s: OK, %" PRIu64 " entries, every leaf and subtree hash recomputed, "
           "root %s\n", dir, size, hex);
    return 0;
}

int cmd_ledger(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "show") != 0 && strcmp(sub, "verify") != 0)
        return cli_usage_error("ledger", usage, "unknown subcommand '%s'", sub);
    const char *dir = NULL;
    unsigned long long from = 0, to = UINT64_MAX;
    int json = 0, ch;
    static const struct option lo[] = {
        { "data-dir", required_argument, 0, 'd' }, { "from", required_argument, 0, 'f' },
        { "to", required_argument, 0, 't' }, { "json", no_argument, 0, 'j' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    optind = 1;
    while ((ch = getopt_long(argc - 1, argv + 1, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'd': dir = optarg; break;
        case 'f': if (cli_parse_u64("ledger", "--from", optarg, &from)) return 2; break;
        case 't': if (cli_parse_u64("ledger", "--to", optarg, &to)) return 2; break;
        case 'j': json = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!dir)
        return cli_usage_error("ledger", usage, "--data-dir is required");
    if (from > to)
        return cli_usage_error("ledger", usage, "--from %llu is after --to %llu", from, to);
    struct ledger *l;
    if (open_ro(dir, &l) != 0)
        return 1;
    int rc = strcmp(sub, "show") == 0 ? show(l, from, to, json) : verify(l, dir);
    ledger_close(l);
    return rc;
}
