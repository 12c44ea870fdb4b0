/* ledger/checkpoint: C2SP signed-note checkpoints. Known answers from the Go
 * sumdb/note reference and from ledger/checkpoint_reference.py; signatures by the
 * wrong key, altered text, malformed notes of every kind; extension checks; and the
 * checkpoints the ledger stores with each commit, audited against its entries. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/hex.h"
#include "ledger/checkpoint.h"
#include "ledger/group.h"
#include "ledger/ledger.h"

static struct crypto_key *key_from_seed_byte(uint8_t start, const char *id)
{
    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(start + i);
    struct crypto_key *k = NULL;
    assert_int_equal(crypto_key_from_seed(id, seed, &k), 0);
    return k;
}

static void verifier_for(struct crypto_key *k, const char *name, struct checkpoint_key *out)
{
    struct crypto_public_key pub;
    crypto_key_public(k, &pub);
    assert_int_equal(checkpoint_key_init(out, name, pub.key), 0);
}

/* --- known answers ------------------------------------------------------------------ */

/* golang.org/x/mod/sumdb/note: the PeterNeumann example (its skey and vkey strings
 * are base64 of 0x01 ‖ seed and 0x01 ‖ public key). */
static void go_sumdb_note_vector(void **state)
{
    static const char skey_b64[] = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    static const char vkey_b64[] = "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    static const char text[] = "If you think cryptography is the answer to your problem,\n"
                               "then you don't know what your problem is.\n";
    static const char want[] =
        "If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n"
        "\n"
        "\xe2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZ"
        "SNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    uint8_t skey[33], vkey[33];
    size_t n;
    assert_int_equal(sodium_base642bin(skey, sizeof skey, skey_b64, strlen(skey_b64), NULL, &n,
                                       NULL, sodium_base64_VARIANT_ORIGINAL), 0);
    assert_int_equal(n, 33);
    assert_int_equal(sodium_base642bin(vkey, sizeof vkey, vkey_b64, strlen(vkey_b64), NULL, &n,
                                       NULL, sodium_base64_VARIANT_ORIGINAL), 0);
    assert_int_equal(n, 33);
    assert_int_equal(checkpoint_key_id("PeterNeumann", vkey + 1), 0xc74f20a3u);

    struct crypto_key *k;
    assert_int_equal(crypto_key_from_seed("peterneumann", skey + 1, &k), 0);
    struct crypto_public_key pub;
    crypto_key_public(k, &pub);
    assert_memory_equal(pub.key, vkey + 1, 32);
    char out[512];
    size_t len;
    assert_int_equal(checkpoint_note_sign(text, strlen(text), "PeterNeumann", k, out, sizeof out,
                                          &len), 0);
    assert_int_equal(len, strlen(want));
    assert_string_equal(out, want);

    struct checkpoint_key v;
    assert_int_equal(checkpoint_key_init(&v, "PeterNeumann", vkey + 1), 0);
    size_t tlen = 0;
    assert_int_equal(checkpoint_note_open(want, strlen(want), &v, &tlen, NULL, 0), 0);
    assert_int_equal(tlen, strlen(text));
    char altered[sizeof want];
    memcpy(altered, want, sizeof want);
    memcpy(strstr(altered, "cryptography"), "cryptographY", 12);
    char why[200];
    assert_int_equal(checkpoint_note_open(altered, strlen(altered), &v, NULL, why, sizeof why),
                     LEDGER_ERR_NOTE_SIGNATURE);
    assert_non_null(strstr(why, "PeterNeumann"));
    crypto_key_free(k);
}

/* ledger/checkpoint_reference.py, seed 00..1f, size 42, root 50..6f. */
static const char reference_note[] =
    "aulac/au-lac-demo\n"
    "42\n"
    "UFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqa2xtbm8=\n"
    "\n"
    "\xe2\x80\x94 aulac/au-lac-demo VrHwZWBwq4BdshGspj8Tx4OeqHYuBKKQgloHzzd8oEIZL9PmsAMXYdf4KPMx"
    "mNmJVBxH7iyfabRnD5ggM1lG5rCBQAc=\n";

static void reference_checkpoint_vector(void **state)
{
    struct crypto_key *k = key_from_seed_byte(0, "coordinator");
    struct checkpoint c = { .size = 42 };
    char origin[CHECKPOINT_ORIGIN_MAX + 1];
    assert_int_equal(checkpoint_origin("au-lac-demo", origin, sizeof origin), 0);
    assert_string_equal(origin, "aulac/au-lac-demo");
    memcpy(c.origin, origin, sizeof origin);
    for (int i = 0; i < 32; i++)
        c.root[i] = (uint8_t)(0x50 + i);
    char note[CHECKPOINT_SIGNED_MAX];
    size_t len;
    assert_int_equal(checkpoint_sign(&c, k, note, sizeof note, &len), 0);
    assert_string_equal(note, reference_note);
    assert_int_equal(len, 182);

    struct checkpoint_key v;
    verifier_for(k, origin, &v);
    assert_int_equal(v.id, 0x56b1f065u);
    struct checkpoint got;
    assert_int_equal(checkpoint_verify(note, len, &v, &got, NULL, 0), 0);
    assert_string_equal(got.origin, origin);
    assert_int_equal(got.size, 42);
    assert_memory_equal(got.root, c.root, 32);
    crypto_key_free(k);
}

/* --- refusals -------------------------------------------------------------------------- */

struct signed_fixture {
    struct crypto_key *k, *other;
    struct checkpoint_key v, v_other;
    char note[CHECKPOINT_SIGNED_MAX];
    size_t len;
};

static int sf_setup(void **state)
{
    struct signed_fixture *f = calloc(1, sizeof *f);
    f->k = key_from_seed_byte(0, "coordinator");
    f->other = key_from_seed_byte(1, "coordinator");
    verifier_for(f->k, "aulac/au-lac-demo", &f->v);
    verifier_for(f->other, "aulac/au-lac-demo", &f->v_other);
    memcpy(f->note, reference_note, sizeof reference_note);
    f->len = strlen(reference_note);
    *state = f;
    return 0;
}

static int sf_teardown(void **state)
{
    struct signed_fixture *f = *state;
    crypto_key_free(f->k);
    crypto_key_free(f->other);
    free(f);
    return 0;
}

/* Verifies text with the fixture's key; returns the code and leaves why. */
static int try(struct signed_fixture *f, const char *text, char *why, size_t cap)
{
    struct checkpoint c;
    why[0] = '\0';
    int rc = checkpoint_verify(text, strlen(text), &f->v, &c, why, cap);
    if (rc != 0)
        assert_true(why[0] != '\0');   /* every refusal says why */
    return rc;
}

static void wrong_key_and_bad_signature(void **state)
{
    struct signed_fixture *f = *state;
    struct checkpoint c;
    char why[320];
    /* another key with the same name: its key ID differs, so the note carries no
     * signature it knows */
    assert_int_equal(checkpoint_verify(f->note, f->len, &f->v_other, &c, why, sizeof why),
                     LEDGER_ERR_NOTE_UNSIGNED);
    assert_non_null(strstr(why, "no signature by aulac/au-lac-demo"));
    /* the right key under another name */
    struct checkpoint_key renamed;
    assert_int_equal(checkpoint_key_init(&renamed, "aulac/other", f->v.public_key), 0);
    assert_int_equal(checkpoint_verify(f->note, f->len, &renamed, &c, why, sizeof why),
                     LEDGER_ERR_NOTE_UNSIGNED);
    /* a verifier claiming the signer's name and ID but holding another public key */
    struct checkpoint_key forged = f->v_other;
    forged.id = f->v.id;
    assert_int_equal(checkpoint_verify(f->note, f->len, &forged, &c, why, sizeof why),
                     LEDGER_ERR_NOTE_SIGNATURE);
    assert_non_null(strstr(why, "line 5"));

    /* every base64 character of the signature changed in turn (keeping it canonical) */
    char *sig = strrchr(f->note, ' ') + 1;
    size_t sig_chars = strlen(sig) - 1 - 2;    /* newline, '=' padding and its bit-carrying char */
    for (size_t i = 6; i < sig_chars; i++) {   /* past the key ID */
        char keep = sig[i];
        sig[i] = keep == 'A' ? 'B' : 'A';
        assert_int_equal(try(f, f->note, why, sizeof why), LEDGER_ERR_NOTE_SIGNATURE);
        sig[i] = keep;
    }
    /* the key ID changed: now an unknown signature */
    char keep = sig[0];
    sig[0] = keep == 'A' ? 'B' : 'A';
    assert_int_equal(try(f, f->note, why, sizeof why), LEDGER_ERR_NOTE_UNSIGNED);
    sig[0] = keep;
    assert_int_equal(try(f, f->note, why, sizeof why), 0);
}

static void altered_text_fails(void **state)
{
    struct signed_fixture *f = *state;
    char why[320];
    /* size 42 -> 32, one root character changed, origin changed */
    char *size = strstr(f->note, "\n42\n") + 1;
    size[0] = '3';   /* "32" */
    assert_int_equal(try(f, f->note, why, sizeof why), LEDGER_ERR_NOTE_SIGNATURE);
    size[0] = '4';
    assert_int_equal(f->note[25], 'U');   /* inside the root line */
    f->note[25] = 'T';
    assert_int_equal(try(f, f->note, why, sizeof why), LEDGER_ERR_NOTE_SIGNATURE);
    f->note[25] = 'U';
    f->note[0] = 'b';
    assert_int_equal(try(f, f->note, why, sizeof why), LEDGER_ERR_NOTE_SIGNATURE);
    f->note[0] = 'a';
    assert_int_equal(try(f, f->note, why, sizeof why), 0);
}

static void other_signatures_are_ignored_but_ours_must_verify(void **state)
{
    struct signed_fixture *f = *state;
    char text[2048], why[320];
    const char *sigline = strstr(f->note, "\xe2\x80\x94");
    size_t body = (size_t)(sigline - f->note);
    /* an unknown witness first, then ours */
    snprintf(text, sizeof text, "%.*s\xe2\x80\x94 witness.example/w1 AAAAAAECAwQ=\n%s",
             (int)body, f->note, sigline);
    assert_int_equal(try(f, text, why, sizeof why), 0);
    /* ours twice, the second one broken: the whole note is refused */
    char broken[200];
    snprintf(broken, sizeof broken, "%s", sigline);
    char *b = strrchr(broken, ' ') + 10;
    *b = *b == 'A' ? 'B' : 'A';
    snprintf(text, sizeof text, "%.*s%s%s", (int)body, f->note, sigline, broken);
    assert_int_equal(try(f, text, why, sizeof why), LEDGER_ERR_NOTE_SIGNATURE);
    assert_non_null(strstr(why, "line 6"));
    /* only an unknown signature */
    snprintf(text, sizeof text, "%.*s\xe2\x80\x94 witness.example/w1 AAAAAAECAwQ=\n", (int)body,
             f->note);
    assert_int_equal(try(f, text, why, sizeof why), LEDGER_ERR_NOTE_UNSIGNED);
}

static void extension_lines_are_accepted(void **state)
{
    struct signed_fixture *f = *state;
    static const char text[] = "aulac/au-lac-demo\n7\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
                               "ext line one\n";
    char note[CHECKPOINT_SIGNED_MAX];
    assert_int_equal(checkpoint_note_sign(text, strlen(text), "aulac/au-lac-demo", f->k, note,
                                          sizeof note, NULL), 0);
    struct checkpoint c;
    assert_int_equal(checkpoint_verify(note, strlen(note), &f->v, &c, NULL, 0), 0);
    assert_int_equal(c.size, 7);
}

/* A note signed by the fixture's key over arbitrary text, to reach the body checks. */
static int body_error(struct signed_fixture *f, const char *text, char *why, size_t cap)
{
    char note[4096];
    assert_int_equal(checkpoint_note_sign(text, strlen(text), "aulac/au-lac-demo", f->k, note,
                                          sizeof note, NULL), 0);
    return try(f, note, why, cap);
}

static void malformed_checkpoints(void **state)
{
    struct signed_fixture *f = *state;
    char why[320];
    static const char *root = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    char t[512];
    static const struct { const char *size; const char *needle; } bad_sizes[] = {
        { "042", "leading zero" },
        { "-1", "not a decimal number" },
        { "4 2", "not a decimal number" },
        { "0x10", "not a decimal number" },
        { "18446744073709551616", "does not fit in 64 bits" },
        { "123456789012345678901", "too long" },
    };
    for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
        snprintf(t, sizeof t, "aulac/au-lac-demo\n%s\n%s\n", bad_sizes[i].size, root);
        assert_int_equal(body_error(f, t, why, sizeof why), LEDGER_ERR_CHECKPOINT_FORMAT);
        if (!strstr(why, bad_sizes[i].needle) || !strstr(why, "line 2"))
            fail_msg("size '%s': %s", bad_sizes[i].size, why);
    }
    snprintf(t, sizeof t, "aulac/au-lac-demo\n18446744073709551615\n%s\n", root);
    assert_int_equal(body_error(f, t, why, sizeof why), 0);

    static const char *bad_roots[] = {
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",       /* unpadded */
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=",      /* non-canonical last char */
        "47DEQpj8HBSa-_TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",      /* URL alphabet */
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hS",          /* 30 bytes */
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=AAAA",  /* 35 bytes */
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",   /* hex */
    };
    for (size_t i = 0; i < sizeof bad_roots / sizeof bad_roots[0]; i++) {
        snprintf(t, sizeof t, "aulac/au-lac-demo\n3\n%s\n", bad_roots[i]);
        assert_int_equal(body_error(f, t, why, sizeof why), LEDGER_ERR_CHECKPOINT_FORMAT);
        assert_non_null(strstr(why, "line 3"));
    }
    snprintf(t, sizeof t, "aulac/au-lac-demo\n3\n");
    assert_int_equal(body_error(f, t, why, sizeof why), LEDGER_ERR_CHECKPOINT_FORMAT);
    assert_non_null(strstr(why, "needs origin, tree size and root"));
    snprintf(t, sizeof t, "aulac/au-lac-demo\n\n3\n%s\n", root);
    assert_int_equal(body_error(f, t, why, sizeof why), LEDGER_ERR_CHECKPOINT_FORMAT);
    assert_non_null(strstr(why, "line 2 is empty"));
    /* signed by our key but for another log */
    snprintf(t, sizeof t, "aulac/elsewhere\n3\n%s\n", root);
    assert_int_equal(body_error(f, t, why, sizeof why), LEDGER_ERR_CHECKPOINT_MISMATCH);
    assert_non_null(strstr(why, "aulac/elsewhere"));
}

static void malformed_notes(void **state)
{
    struct signed_fixture *f = *state;
    char why[320], t[1024];
    const char *sigline = strstr(f->note, "\xe2\x80\x94");
    const char *sig = strrchr(f->note, ' ') + 1;
    size_t body = (size_t)(sigline - f->note) - 1;   /* text with its newline, no blank line */
    assert_int_equal(try(f, "", why, sizeof why), LEDGER_ERR_NOTE_FORMAT);
    assert_non_null(strstr(why, "empty"));
    /* no blank line before the signature */
    snprintf(t, sizeof t, "%.*s%s", (int)body, f->note, sigline);
    assert_int_equal(try(f, t, why, sizeof why), LEDGER_ERR_NOTE_FORMAT);
    assert_non_null(strstr(why, "no blank line"));
    /* no signature lines at all */
    snprintf(t, sizeof t, "%.*s\n", (int)body, f->note);
    assert_int_equal(try(f, t, why, sizeof why), LEDGER_ERR_NOTE_FORMAT);
    /* truncated: no final newline */
    snprintf(t, sizeof t, "%s", f->note);
    t[strlen(t) - 1] = '\0';
    assert_int_equal(try(f, t, why, sizeof why), LEDGER_ERR_NOTE_FORMAT);
    assert_non_null(strstr(why, "newline"));
    /* CRLF line ends */
    snprintf(t, sizeof t, "aulac/au-lac-demo\r\n42\n");
    assert_int_equal(try(f, t, why, sizeof why), LEDGER_ERR_NOTE_FORMAT);
    assert_non_null(strstr(why, "line 1 column 18"));
    assert_non_null(strstr(why, "LF only"));
    /* invalid UTF-8: a lone continuation byte, an overlong NUL, a surrogate */
    static const char *bad_utf8[] = { "aulac/a\x80\n", "aulac/a\xc0\x80\n", "aulac/\xed\xa0\x80\n" };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(try(f, bad_utf8[i], why, sizeof why), LEDGER_ERR_NOTE_FORMAT);
        assert_non_null(strstr(why, "UTF-8"));
    }
    /* a tab */
    snprintf(t, sizeof t, "%s", f->note);
    t[5] = '\t';
    assert_int_equal(try(f, t, why, sizeof why), LEDGER_ERR_NOTE_FORMAT);
    /* signature lines: hyphen instead of em dash, missing name, '+' in the name,
     * non-base64, short blob, two spaces */
    static const char *bad_lines[] = {
        "- aulac/au-lac-demo %s",
        "\xe2\x80\x94 %s",
        "\xe2\x80\x94  %s",
        "\xe2\x80\x94 aulac+x %s",
        "\xe2\x80\x94 aulac/au-lac-demo !!!!",
        "\xe2\x80\x94 aulac/au-lac-demo AAAA",
        "\xe2\x80\x94 aulac/au-lac-demo  %s",
        "\xe2\x80\x94 aulac/au-lac-demo %s extra",
    };
    char line[300];
    char sig_only[200];
    snprintf(sig_only, sizeof sig_only, "%.*s", (int)strcspn(sig, "\n"), sig);
    for (size_t i = 0; i < sizeof bad_lines / sizeof bad_lines[0]; i++) {
        snprintf(line, sizeof line, bad_lines[i], sig_only);
        snprintf(t, sizeof t, "%.*s\n%s\n", (int)body, f->note, line);
        int rc = try(f, t, why, sizeof why);
        if (rc != LEDGER_ERR_NOTE_FORMAT || !strstr(why, "line 5"))
            fail_msg("signature line '%s': %d %s", line, rc, why);
    }
    /* too long */
    char *big = malloc(CHECKPOINT_NOTE_MAX + 2);
    memset(big, 'a', CHECKPOINT_NOTE_MAX + 1);
    big[CHECKPOINT_NOTE_MAX + 1] = '\0';
    assert_int_equal(try(f, big, why, sizeof why), LEDGER_ERR_NOTE_FORMAT);
    assert_non_null(strstr(why, "more than"));
    free(big);
    /* parse without a key still checks the framing */
    struct checkpoint c;
    assert_int_equal(checkpoint_parse(f->note, f->len, &c, NULL, 0), 0);
    assert_int_equal(checkpoint_parse("x\n", 2, &c, why, sizeof why), LEDGER_ERR_NOTE_FORMAT);
    assert_int_equal(checkpoint_verify(f->note, f->len, NULL, &c, NULL, 0), LEDGER_ERR_ARG);
}

static void names_and_origins(void **state)
{
    char out[CHECKPOINT_ORIGIN_MAX + 1];
    assert_int_equal(checkpoint_origin("vn-llm", out, sizeof out), 0);
    assert_string_equal(out, "aulac/vn-llm");
    assert_int_equal(checkpoint_origin("", out, sizeof out), LEDGER_ERR_ARG);
    assert_int_equal(checkpoint_origin("a b", out, sizeof out), LEDGER_ERR_ARG);
    assert_int_equal(checkpoint_origin("a+b", out, sizeof out), LEDGER_ERR_ARG);
    assert_int_equal(checkpoint_origin("vn-llm", out, 8), LEDGER_ERR_ARG);
    assert_true(checkpoint_name_valid("example.com/log42"));
    assert_false(checkpoint_name_valid(""));
    assert_false(checkpoint_name_valid("has space"));
    assert_false(checkpoint_name_valid("tab\there"));
    uint8_t pk[32] = { 0 };
    struct checkpoint_key k;
    assert_int_equal(checkpoint_key_init(&k, "bad+name", pk), LEDGER_ERR_ARG);
}

static void extension_checks(void **state)
{
    uint8_t leaves[8][32];
    for (int i = 0; i < 8; i++)
        merkle_leaf_hash((const uint8_t *)&i, sizeof i, leaves[i]);
    struct checkpoint a = { .origin = "aulac/x", .size = 3 }, b = { .origin = "aulac/x", .size = 7 };
    assert_int_equal(merkle_root((const uint8_t (*)[32])leaves, 3, a.root), 0);
    assert_int_equal(merkle_root((const uint8_t (*)[32])leaves, 7, b.root), 0);
    uint8_t proof[MERKLE_PROOF_MAX][32];
    size_t len = MERKLE_PROOF_MAX;
    assert_int_equal(merkle_consistency_proof((const uint8_t (*)[32])leaves, 7, 3, proof, &len), 0);
    char why[320];
    const uint8_t (*P)[32] = (const uint8_t (*)[32])proof;
    assert_int_equal(checkpoint_check_extension(&a, &b, P, len, why, sizeof why), 0);
    assert_int_equal(checkpoint_check_extension(&a, &a, NULL, 0, why, sizeof why), 0);
    /* smaller: entries dropped */
    assert_int_equal(checkpoint_check_extension(&b, &a, NULL, 0, why, sizeof why), LEDGER_ERR_REWRITTEN);
    assert_non_null(strstr(why, "ledger at size 3 is not an extension of the one seen at "
                                "size 7: history was rewritten"));
    /* a rewritten leaf: same sizes, another root; and the proof no longer fits */
    struct checkpoint b2 = b;
    merkle_leaf_hash((const uint8_t *)"evil", 4, leaves[1]);
    assert_int_equal(merkle_root((const uint8_t (*)[32])leaves, 7, b2.root), 0);
    assert_int_equal(checkpoint_check_extension(&b, &b2, NULL, 0, why, sizeof why), LEDGER_ERR_REWRITTEN);
    assert_non_null(strstr(why, "same size, different root"));
    len = MERKLE_PROOF_MAX;
    assert_int_equal(merkle_consistency_proof((const uint8_t (*)[32])leaves, 7, 3, proof, &len), 0);
    assert_int_equal(checkpoint_check_extension(&a, &b2, P, len, why, sizeof why), LEDGER_ERR_REWRITTEN);
    assert_non_null(strstr(why, "consistency proof"));
    struct checkpoint other = b;
    snprintf(other.origin, sizeof other.origin, "aulac/y");
    assert_int_equal(checkpoint_check_extension(&a, &other, P, len, why, sizeof why),
                     LEDGER_ERR_CHECKPOINT_MISMATCH);
}

/* --- checkpoints stored by the ledger --------------------------------------------------- */

struct lfix {
    char dir[256];
    struct ledger *l;
    struct crypto_key *k;
    struct checkpoint_key v;
    uint64_t n;
};

static int lf_setup(void **state)
{
    struct lfix *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/aulac-ckpt-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    struct ledger_options o = { .checkpoint_interval = 1 };   /* keep every checkpoint */
    if (!mkdtemp(f->dir) || ledger_open(f->dir, &o, &f->l) != 0)
        return -1;
    f->k = key_from_seed_byte(7, "coordinator");
    verifier_for(f->k, "aulac/test", &f->v);
    *state = f;
    return 0;
}

static int lf_teardown(void **state)
{
    struct lfix *f = *state;
    ledger_close(f->l);
    crypto_key_free(f->k);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static void append_commit(struct lfix *f, size_t count)
{
    MDB_txn *txn;
    assert_int_equal(ledger_txn_begin(f->l, &txn), 0);
    for (size_t i = 0; i < count; i++) {
        char buf[64];
        int len = snprintf(buf, sizeof buf, "entry %llu", (unsigned long long)f->n++);
        assert_int_equal(ledger_append(f->l, txn, (const uint8_t *)buf, (size_t)len, NULL), 0);
    }
    assert_int_equal(ledger_txn_commit(f->l, txn), 0);
}

struct seen {
    uint64_t sizes[64];
    size_t n;
    const struct checkpoint_key *v;
};

static int collect(uint64_t size, const char *note, size_t len, void *arg)
{
    struct seen *s = arg;
    struct checkpoint c;
    assert_int_equal(checkpoint_verify(note, len, s->v, &c, NULL, 0), 0);
    assert_int_equal(c.size, size);
    s->sizes[s->n++] = size;
    return 0;
}

static void each_commit_publishes_a_checkpoint(void **state)
{
    struct lfix *f = *state;
    char *note = NULL;
    assert_int_equal(ledger_set_signer(f->l, "aulac/test", f->k), 0);   /* empty: signs nothing */
    assert_int_equal(ledger_checkpoint_get(f->l, LEDGER_LATEST, 0, &note, NULL, NULL),
                     LEDGER_ERR_NOT_FOUND);
    append_commit(f, 3);
    append_commit(f, 1);
    append_commit(f, 5);
    MDB_txn *txn;   /* a commit that appends nothing publishes nothing */
    assert_int_equal(ledger_txn_begin(f->l, &txn), 0);
    assert_int_equal(ledger_txn_commit(f->l, txn), 0);
    const uint8_t *batch[3] = { (const uint8_t *)"a", (const uint8_t *)"bb", (const uint8_t *)"ccc" };
    size_t lens[3] = { 1, 2, 3 };
    uint64_t first;
    assert_int_equal(ledger_txn_begin(f->l, &txn), 0);
    assert_int_equal(ledger_append_batch(f->l, txn, batch, lens, 3, &first), 0);
    assert_int_equal(first, 9);
    assert_int_equal(ledger_txn_commit(f->l, txn), 0);

    struct seen s = { .v = &f->v };
    assert_int_equal(ledger_checkpoint_each(f->l, 0, collect, &s), 0);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.sizes[0], 3);
    assert_int_equal(s.sizes[1], 4);
    assert_int_equal(s.sizes[2], 9);
    assert_int_equal(s.sizes[3], 12);

    size_t len;
    uint64_t found;
    struct checkpoint c;
    uint8_t root[32];
    assert_int_equal(ledger_checkpoint_get(f->l, LEDGER_LATEST, 0, &note, &len, &found), 0);
    assert_int_equal(found, 12);
    assert_int_equal(checkpoint_verify(note, len, &f->v, &c, NULL, 0), 0);
    assert_int_equal(ledger_root(f->l, 12, root), 0);
    assert_memory_equal(c.root, root, 32);
    free(note);
    assert_int_equal(ledger_checkpoint_get(f->l, 5, 1, &note, &len, &found), 0);   /* at least 5 */
    assert_int_equal(found, 9);
    free(note);
    assert_int_equal(ledger_checkpoint_get(f->l, 5, 0, &note, &len, &found), LEDGER_ERR_NOT_FOUND);
    assert_null(note);

    /* the full audit, with and without the key, and with the wrong key */
    struct ledger_audit a;
    assert_int_equal(ledger_audit(f->l, &f->v, NULL, NULL, &a), 0);
    assert_int_equal(a.size, 12);
    assert_int_equal(a.checkpoints, 4);
    assert_memory_equal(a.root, root, 32);
    assert_int_equal(ledger_audit(f->l, NULL, NULL, NULL, &a), 0);
    struct crypto_key *other = key_from_seed_byte(9, "coordinator");
    struct checkpoint_key wrong;
    verifier_for(other, "aulac/test", &wrong);
    assert_int_equal(ledger_audit(f->l, &wrong, NULL, NULL, &a), LEDGER_ERR_NOTE_UNSIGNED);
    assert_int_equal(a.bad_checkpoint, 3);
    assert_non_null(strstr(a.why, "checkpoint of size 3"));
    crypto_key_free(other);

    /* a read-only second opener sees the same */
    struct ledger *ro;
    struct ledger_options o = { .read_only = 1 };
    assert_int_equal(ledger_open(f->dir, &o, &ro), 0);
    assert_int_equal(ledger_audit(ro, &f->v, NULL, NULL, &a), 0);
    assert_int_equal(a.checkpoints, 4);
    ledger_close(ro);
}

static void raw_edit(const char *dir, const char *db, void (*edit)(MDB_txn *, MDB_dbi, void *),
                     void *arg)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
    edit(txn, dbi, arg);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void be64(uint64_t v, uint8_t out[8])
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

/* Replaces the entry and its leaf hash and every stored subtree hash over it,
 * consistently: only checkpoints can tell. */
struct rewrite { uint64_t index, n; };

static void rewrite_entries(MDB_txn *txn, MDB_dbi dbi, void *arg)
{
    struct rewrite *r = arg;
    uint8_t kb[8];
    be64(r->index, kb);
    MDB_val k = { 8, kb }, v = { 5, "evil!" };
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
}

static void rewrite_nodes(MDB_txn *txn, MDB_dbi dbi, void *arg)
{
    struct rewrite *r = arg;
    /* recompute all levels from the entries */
    MDB_dbi edb;
    assert_int_equal(mdb_dbi_open(txn, "ledger.entries", 0, &edb), 0);
    for (unsigned level = 0; ((uint64_t)1 << level) <= r->n; level++) {
        for (uint64_t i = 0; (i + 1) << level <= r->n; i++) {
            uint8_t h[32], key[9];
            key[0] = (uint8_t)level;
            be64(i, key + 1);
            if (level == 0) {
                uint8_t kb[8];
                be64(i, kb);
                MDB_val k = { 8, kb }, v;
                assert_int_equal(mdb_get(txn, edb, &k, &v), 0);
                merkle_leaf_hash(v.mv_data, v.mv_size, h);
            } else {
                uint8_t lk[9], rk[9];
                lk[0] = rk[0] = (uint8_t)(level - 1);
                be64(2 * i, lk + 1);
                be64(2 * i + 1, rk + 1);
                MDB_val a = { 9, lk }, b = { 9, rk }, av, bv;
                assert_int_equal(mdb_get(txn, dbi, &a, &av), 0);
                assert_int_equal(mdb_get(txn, dbi, &b, &bv), 0);
                merkle_node_hash(av.mv_data, bv.mv_data, h);
            }
            MDB_val k = { 9, key }, v = { 32, h };
            assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
        }
    }
}

/* 18 signed entries in 6 commits (checkpoints at 3, 6, ..., 18), then entry 10 and
 * every hash over it rewritten consistently; the ledger is left closed. */
static void sign_18_then_rewrite_entry_10(struct lfix *f)
{
    assert_int_equal(ledger_set_signer(f->l, "aulac/test", f->k), 0);
    for (int i = 0; i < 6; i++)
        append_commit(f, 3);
    ledger_close(f->l);
    f->l = NULL;
    struct rewrite r = { .index = 10, .n = 18 };
    raw_edit(f->dir, "ledger.entries", rewrite_entries, &r);
    raw_edit(f->dir, "ledger.nodes", rewrite_nodes, &r);
}

static void consistent_rewrite_is_caught_by_checkpoints(void **state)
{
    struct lfix *f = *state;
    sign_18_then_rewrite_entry_10(f);
    struct ledger_options keep_all = { .checkpoint_interval = 1 };
    assert_int_equal(ledger_open(f->dir, &keep_all, &f->l), 0);
    uint64_t bad = 0;
    /* the hashes agree with the bytes now ... */
    assert_int_equal(ledger_verify_all(f->l, &bad, NULL, NULL, NULL, NULL), 0);
    /* ... but not with what was signed */
    struct ledger_audit a;
    assert_int_equal(ledger_audit(f->l, &f->v, NULL, NULL, &a), LEDGER_ERR_CHECKPOINT_MISMATCH);
    assert_int_equal(a.bad_checkpoint, 12);
    assert_int_equal(a.bad_index, 9);   /* entries 9..11 may differ; 0..8 matched size 9 */
    assert_int_equal(a.checkpoints, 3);
    assert_non_null(strstr(a.why, "entry in 9..11"));
    /* and the coordinator refuses to sign on top of it */
    assert_int_equal(ledger_set_signer(f->l, "aulac/test", f->k), LEDGER_ERR_CHECKPOINT_MISMATCH);
}

/* Entries committed without a signer: no checkpoint covers them, so nothing may sign
 * on top of them and the audit fails them. */
static void entries_without_a_checkpoint_are_refused(void **state)
{
    struct lfix *f = *state;
    append_commit(f, 3);
    struct ledger_audit a;
    assert_int_equal(ledger_audit(f->l, &f->v, NULL, NULL, &a), LEDGER_ERR_UNSIGNED_ENTRIES);
    assert_int_equal(a.bad_index, 0);
    assert_int_equal(a.size, 3);
    assert_non_null(strstr(a.why, "entries 0..2 are covered by no signed checkpoint (no signed "
                                  "checkpoint is stored)"));
    assert_int_equal(ledger_set_signer(f->l, "aulac/test", f->k), LEDGER_ERR_UNSIGNED_ENTRIES);
    /* refused means not signing: the next commit publishes nothing */
    append_commit(f, 1);
    char *note = NULL;
    assert_int_equal(ledger_checkpoint_get(f->l, LEDGER_LATEST, 0, &note, NULL, NULL),
                     LEDGER_ERR_NOT_FOUND);
}

struct ckpt_cut { uint64_t above; };

static void drop_checkpoints_above(MDB_txn *txn, MDB_dbi dbi, void *arg)
{
    const struct ckpt_cut *c = arg;
    MDB_cursor *cur;
    assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
    MDB_val k, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        uint64_t size = 0;
        for (int i = 0; i < 8; i++)
            size = (size << 8) | ((uint8_t *)k.mv_data)[i];
        if (size > c->above)
            assert_int_equal(mdb_cursor_del(cur, 0), 0);
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
}

/* Issue 10, item 3: a consistent rewrite of an entry and every hash, with the
 * checkpoints that cover it deleted (or all of them), is refused and named. */
static void rewrite_with_its_checkpoints_deleted_is_refused(void **state)
{
    struct lfix *f = *state;
    sign_18_then_rewrite_entry_10(f);
    struct ckpt_cut cut = { .above = 9 };   /* those of 12, 15, 18 cover entry 10 */
    raw_edit(f->dir, "ledger.checkpoints", drop_checkpoints_above, &cut);
    struct ledger_options keep_all = { .checkpoint_interval = 1 };
    assert_int_equal(ledger_open(f->dir, &keep_all, &f->l), 0);
    assert_int_equal(ledger_verify_all(f->l, NULL, NULL, NULL, NULL, NULL), 0);
    struct ledger_audit a;
    assert_int_equal(ledger_audit(f->l, &f->v, NULL, NULL, &a), LEDGER_ERR_UNSIGNED_ENTRIES);
    assert_int_equal(a.checkpoints, 3);
    assert_int_equal(a.bad_index, 9);
    assert_non_null(strstr(a.why, "entries 9..17 are covered by no signed checkpoint (the "
                                  "newest signed checkpoint is of size 9)"));
    assert_int_equal(ledger_set_signer(f->l, "aulac/test", f->k), LEDGER_ERR_UNSIGNED_ENTRIES);
    uint64_t latest = 0;
    char *note;
    assert_int_equal(ledger_checkpoint_get(f->l, LEDGER_LATEST, 0, &note, NULL, &latest), 0);
    free(note);
    assert_int_equal(latest, 9);   /* nothing was signed over the forgery */

    ledger_close(f->l);
    f->l = NULL;
    cut.above = 0;
    raw_edit(f->dir, "ledger.checkpoints", drop_checkpoints_above, &cut);
    assert_int_equal(ledger_open(f->dir, &keep_all, &f->l), 0);
    assert_int_equal(ledger_audit(f->l, &f->v, NULL, NULL, &a), LEDGER_ERR_UNSIGNED_ENTRIES);
    assert_int_equal(a.bad_index, 0);
    assert_non_null(strstr(a.why, "entries 0..17 are covered by no signed checkpoint (no "
                                  "signed checkpoint is stored)"));
    assert_int_equal(ledger_set_signer(f->l, "aulac/test", f->k), LEDGER_ERR_UNSIGNED_ENTRIES);
}

static void drop_tail(MDB_txn *txn, MDB_dbi dbi, void *arg)
{
    uint64_t from = *(uint64_t *)arg;
    for (uint64_t i = from;; i++) {
        uint8_t kb[8];
        be64(i, kb);
        MDB_val k = { 8, kb };
        if (mdb_del(txn, dbi, &k, NULL) != 0)
            break;
    }
}

static void drop_tail_nodes(MDB_txn *txn, MDB_dbi dbi, void *arg)
{
    uint64_t from = *(uint64_t *)arg;
    for (unsigned level = 0; level < 8; level++)
        for (uint64_t i = from >> level; i < 64; i++) {
            uint8_t kb[9];
            kb[0] = (uint8_t)level;
            be64(i, kb + 1);
            MDB_val k = { 9, kb };
            mdb_del(txn, dbi, &k, NULL);
        }
}

static void dropped_entries_contradict_a_checkpoint(void **state)
{
    struct lfix *f = *state;
    assert_int_equal(ledger_set_signer(f->l, "aulac/test", f->k), 0);
    append_commit(f, 5);
    append_commit(f, 5);
    ledger_close(f->l);
    f->l = NULL;
    uint64_t from = 7;
    raw_edit(f->dir, "ledger.entries", drop_tail, &from);
    raw_edit(f->dir, "ledger.nodes", drop_tail_nodes, &from);
    assert_int_equal(ledger_open(f->dir, &(struct ledger_options){ .checkpoint_interval = 1 }, &f->l), 0);
    assert_int_equal(ledger_verify_all(f->l, NULL, NULL, NULL, NULL, NULL), 0);
    struct ledger_audit a;
    assert_int_equal(ledger_audit(f->l, &f->v, NULL, NULL, &a), LEDGER_ERR_CHECKPOINT_MISMATCH);
    assert_int_equal(a.bad_checkpoint, 10);
    assert_int_equal(a.bad_index, 7);
    assert_non_null(strstr(a.why, "only 7 entries"));
    assert_int_equal(ledger_set_signer(f->l, "aulac/test", f->k), LEDGER_ERR_CHECKPOINT_MISMATCH);
}

static void flip_checkpoint(MDB_txn *txn, MDB_dbi dbi, void *arg)
{
    uint8_t kb[8], copy[CHECKPOINT_SIGNED_MAX];
    be64(*(uint64_t *)arg, kb);
    MDB_val k = { 8, kb }, v;
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    memcpy(copy, v.mv_data, v.mv_size);
    char *size_line = memchr(copy, '\n', v.mv_size) + 1;
    size_line[0] = size_line[0] == '9' ? '8' : '9';   /* claims another size, same signature */
    v.mv_data = copy;
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
}

static void tampered_checkpoint_is_named(void **state)
{
    struct lfix *f = *state;
    assert_int_equal(ledger_set_signer(f->l, "aulac/test", f->k), 0);
    append_commit(f, 2);
    append_commit(f, 2);
    append_commit(f, 2);
    ledger_close(f->l);
    f->l = NULL;
    uint64_t which = 4;
    raw_edit(f->dir, "ledger.checkpoints", flip_checkpoint, &which);
    assert_int_equal(ledger_open(f->dir, &(struct ledger_options){ .checkpoint_interval = 1 }, &f->l), 0);
    struct ledger_audit a;
    assert_int_equal(ledger_audit(f->l, &f->v, NULL, NULL, &a), LEDGER_ERR_NOTE_SIGNATURE);
    assert_int_equal(a.bad_checkpoint, 4);
    assert_int_equal(a.checkpoints, 1);
    /* without the key the size disagrees with where it is stored */
    assert_int_equal(ledger_audit(f->l, NULL, NULL, NULL, &a), LEDGER_ERR_CHECKPOINT_MISMATCH);
    assert_non_null(strstr(a.why, "stored as the checkpoint of size 4"));
}

static void checkpoints_are_thinned(void **state)
{
    struct lfix *f = *state;
    ledger_close(f->l);
    struct ledger_options o = { .checkpoint_interval = 4 };
    assert_int_equal(ledger_open(f->dir, &o, &f->l), 0);
    assert_int_equal(ledger_set_signer(f->l, "aulac/test", f->k), 0);
    for (int i = 0; i < 22; i++)
        append_commit(f, 1);
    /* the first at or past each multiple of 4, and the latest */
    static const uint64_t kept[] = { 1, 4, 8, 12, 16, 20, 22 };
    struct seen s = { .v = &f->v };
    assert_int_equal(ledger_checkpoint_each(f->l, 0, collect, &s), 0);
    assert_int_equal(s.n, sizeof kept / sizeof kept[0]);
    for (size_t i = 0; i < s.n; i++)
        assert_int_equal(s.sizes[i], kept[i]);
    struct ledger_audit a;
    assert_int_equal(ledger_audit(f->l, &f->v, NULL, NULL, &a), 0);
    assert_int_equal(a.checkpoints, 7);
    /* a receipt of size 21 finds the next one kept */
    char *note;
    uint64_t found;
    assert_int_equal(ledger_checkpoint_get(f->l, 21, 1, &note, NULL, &found), 0);
    assert_int_equal(found, 22);
    free(note);
}

/* --- group commit --------------------------------------------------------------------- */

struct appender {
    struct ledger_group *g;
    int id, count;
    uint64_t indexes[50];
};

static void *append_thread(void *arg)
{
    struct appender *a = arg;
    for (int i = 0; i < a->count; i++) {
        char buf[64];
        int len = snprintf(buf, sizeof buf, "thread %d entry %d", a->id, i);
        if (ledger_group_append(a->g, (const uint8_t *)buf, (size_t)len, &a->indexes[i]) != 0)
            a->indexes[i] = UINT64_MAX;
    }
    return NULL;
}

static void group_commit_shares_commits(void **state)
{
    struct lfix *f = *state;
    assert_int_equal(ledger_set_signer(f->l, "aulac/test", f->k), 0);
    struct ledger_group *g;
    assert_int_equal(ledger_group_open(f->l, &g), 0);
    enum { T = 8, PER = 50 };
    struct appender a[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        a[t] = (struct appender){ .g = g, .id = t, .count = PER };
        assert_int_equal(pthread_create(&th[t], NULL, append_thread, &a[t]), 0);
    }
    for (int t = 0; t < T; t++)
        pthread_join(th[t], NULL);
    uint64_t commits = ledger_group_commits(g);
    ledger_group_close(g);
    assert_true(commits >= 1 && commits <= T * PER);
    print_message("    %d appends from %d threads in %llu commits\n", T * PER, T,
                  (unsigned long long)commits);
    /* every index handed out once, each entry where its index says */
    uint8_t seen[T * PER] = { 0 };
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < PER; i++) {
            uint64_t ix = a[t].indexes[i];
            assert_true(ix < T * PER);
            assert_false(seen[ix]);
            seen[ix] = 1;
            uint8_t *bytes;
            size_t len;
            char want[64];
            snprintf(want, sizeof want, "thread %d entry %d", t, i);
            assert_int_equal(ledger_get(f->l, ix, &bytes, &len), 0);
            assert_int_equal(len, strlen(want));
            assert_memory_equal(bytes, want, len);
            free(bytes);
        }
    }
    struct ledger_audit au;
    assert_int_equal(ledger_audit(f->l, &f->v, NULL, NULL, &au), 0);
    assert_int_equal(au.size, T * PER);
    assert_int_equal(au.checkpoints, commits + 0);   /* set_signer on an empty log signs nothing */
}

/* --- kill -9 during a burst of group-committed, checkpointed appends ---------------------- */

struct ack {
    uint64_t index;
    uint32_t thread, seq;
};

struct crash_thread {
    struct ledger_group *g;
    int fd;
    uint32_t id, round;
};

static size_t crash_entry(uint32_t round, uint32_t thread, uint32_t seq, char *buf)
{
    return (size_t)snprintf(buf, 64, "crash round %u thread %u entry %u", round, thread, seq);
}

static void *crash_appender(void *p)
{
    struct crash_thread *t = p;
    for (uint32_t seq = 0;; seq++) {
        char buf[64];
        size_t len = crash_entry(t->round, t->id, seq, buf);
        struct ack a = { .thread = t->id, .seq = seq };
        if (ledger_group_append(t->g, (const uint8_t *)buf, len, &a.index) != 0)
            _exit(5);
        /* reported only once durable: this entry is acknowledged */
        if (write(t->fd, &a, sizeof a) != (ssize_t)sizeof a)
            _exit(6);
    }
    return NULL;
}

static void crash_child(const char *dir, struct crypto_key *k, uint32_t round, int fd)
{
    struct ledger *l;
    struct ledger_group *g;
    if (ledger_open(dir, &(struct ledger_options){ .checkpoint_interval = 1 }, &l) != 0 ||
        ledger_set_signer(l, "aulac/test", k) != 0 || ledger_group_open(l, &g) != 0)
        _exit(3);
    pthread_t th[4];
    struct crash_thread t[4];
    for (uint32_t i = 0; i < 4; i++) {
        t[i] = (struct crash_thread){ g, fd, i, round };
        if (pthread_create(&th[i], NULL, crash_appender, &t[i]) != 0)
            _exit(4);
    }
    for (;;)
        pause();
}

static void kill_9_during_group_commit(void **state)
{
    struct lfix *f = *state;
    ledger_close(f->l);
    f->l = NULL;
    uint64_t acked_total = 0;
    for (uint32_t round = 0; round < 3; round++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            crash_child(f->dir, f->k, round, fds[1]);
        }
        close(fds[1]);
        size_t cap = 4096, n = 0;
        struct ack *acks = malloc(cap * sizeof *acks);
        uint64_t want = 40 + 60 * round;
        while (n < want && read(fds[0], &acks[n], sizeof *acks) == (ssize_t)sizeof *acks)
            n++;
        kill(pid, SIGKILL);
        while (n < cap && read(fds[0], &acks[n], sizeof *acks) == (ssize_t)sizeof *acks)
            n++;
        close(fds[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

        struct ledger_options keep_all = { .checkpoint_interval = 1 };
        assert_int_equal(ledger_open(f->dir, &keep_all, &f->l), 0);
        struct ledger_audit a;
        int rc = ledger_audit(f->l, &f->v, NULL, NULL, &a);
        if (rc != 0)
            fail_msg("after kill -9: %s", a.why);
        uint64_t max_acked = 0;
        for (size_t i = 0; i < n; i++) {
            char want_buf[64];
            size_t wlen = crash_entry(round, acks[i].thread, acks[i].seq, want_buf);
            uint8_t *b;
            size_t len;
            assert_int_equal(ledger_get(f->l, acks[i].index, &b, &len), 0);
            assert_int_equal(len, wlen);
            assert_memory_equal(b, want_buf, len);
            free(b);
            if (acks[i].index > max_acked)
                max_acked = acks[i].index;
        }
        /* every acknowledged entry is under a signed checkpoint */
        char *note;
        uint64_t latest;
        assert_int_equal(ledger_checkpoint_get(f->l, LEDGER_LATEST, 0, &note, NULL, &latest), 0);
        free(note);
        assert_true(n == 0 || latest > max_acked);
        assert_int_equal(latest, a.size);
        acked_total += n;
        free(acks);
        ledger_close(f->l);
        f->l = NULL;
    }
    print_message("    %llu acknowledged group-committed appends survived 3 kill -9s; every "
                  "one under a signed checkpoint\n", (unsigned long long)acked_total);
    assert_int_equal(ledger_open(f->dir, NULL, &f->l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(go_sumdb_note_vector),
        cmocka_unit_test(reference_checkpoint_vector),
        cmocka_unit_test_setup_teardown(wrong_key_and_bad_signature, sf_setup, sf_teardown),
        cmocka_unit_test_setup_teardown(altered_text_fails, sf_setup, sf_teardown),
        cmocka_unit_test_setup_teardown(other_signatures_are_ignored_but_ours_must_verify, sf_setup, sf_teardown),
        cmocka_unit_test_setup_teardown(extension_lines_are_accepted, sf_setup, sf_teardown),
        cmocka_unit_test_setup_teardown(malformed_checkpoints, sf_setup, sf_teardown),
        cmocka_unit_test_setup_teardown(malformed_notes, sf_setup, sf_teardown),
        cmocka_unit_test(names_and_origins),
        cmocka_unit_test(extension_checks),
        cmocka_unit_test_setup_teardown(each_commit_publishes_a_checkpoint, lf_setup, lf_teardown),
        cmocka_unit_test_setup_teardown(consistent_rewrite_is_caught_by_checkpoints, lf_setup, lf_teardown),
        cmocka_unit_test_setup_teardown(dropped_entries_contradict_a_checkpoint, lf_setup, lf_teardown),
        cmocka_unit_test_setup_teardown(entries_without_a_checkpoint_are_refused, lf_setup, lf_teardown),
        cmocka_unit_test_setup_teardown(rewrite_with_its_checkpoints_deleted_is_refused, lf_setup, lf_teardown),
        cmocka_unit_test_setup_teardown(tampered_checkpoint_is_named, lf_setup, lf_teardown),
        cmocka_unit_test_setup_teardown(checkpoints_are_thinned, lf_setup, lf_teardown),
        cmocka_unit_test_setup_teardown(group_commit_shares_commits, lf_setup, lf_teardown),
        cmocka_unit_test_setup_teardown(kill_9_during_group_commit, lf_setup, lf_teardown),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests_name("checkpoint", tests, NULL, NULL);
}
