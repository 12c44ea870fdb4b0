/* ledger/cosignature and ledger/witness: the C2SP cosignature/v1 vector of
 * ledger/checkpoint_reference.py byte for byte; tampering, wrong keys and every bit
 * flip refused; the cross-check catching a split view (same size, or no consistency)
 * and counting the other witnesses; the LMDB store keeping each member's latest. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/cosignature.h"
#include "ledger/witness.h"

#define ORIGIN "aulac/au-lac-demo"

static struct crypto_key *key_from_seed_byte(uint8_t start, const char *id)
{
    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(start + i);
    struct crypto_key *k = NULL;
    assert_int_equal(crypto_key_from_seed(id, seed, &k), 0);
    return k;
}

struct fix {
    struct crypto_key *coord, *hust, *fpt;
    struct checkpoint_key log;
    struct cosigner hust_c, fpt_c;
};

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof *f);
    f->coord = key_from_seed_byte(0, "coordinator");
    f->hust = key_from_seed_byte(0x20, "hust");
    f->fpt = key_from_seed_byte(0x40, "fpt");
    struct crypto_public_key p;
    crypto_key_public(f->coord, &p);
    assert_int_equal(checkpoint_key_init(&f->log, ORIGIN, p.key), 0);
    crypto_key_public(f->hust, &p);
    assert_int_equal(cosigner_init(&f->hust_c, ORIGIN, "hust", p.key), 0);
    crypto_key_public(f->fpt, &p);
    assert_int_equal(cosigner_init(&f->fpt_c, ORIGIN, "fpt", p.key), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    crypto_key_free(f->coord);
    crypto_key_free(f->hust);
    crypto_key_free(f->fpt);
    free(f);
    return 0;
}

static void signed_note(struct fix *f, uint64_t size, uint8_t root_start, char *out, size_t *len)
{
    struct checkpoint c = { .size = size };
    snprintf(c.origin, sizeof c.origin, ORIGIN);
    for (int i = 0; i < 32; i++)
        c.root[i] = (uint8_t)(root_start + i);
    assert_int_equal(checkpoint_sign(&c, f->coord, out, CHECKPOINT_SIGNED_MAX, len), 0);
}

/* ledger/checkpoint_reference.py: hust cosigns the worked example at 1767225600. */
static void reference_cosignature_vector(void **state)
{
    struct fix *f = *state;
    static const char want[] =
        "aulac/au-lac-demo\n42\nUFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqa2xtbm8=\n\n"
        "\xe2\x80\x94 aulac/au-lac-demo VrHwZWBwq4BdshGspj8Tx4OeqHYuBKKQgloHzzd8oEIZL9PmsAMXYdf4KPMx"
        "mNmJVBxH7iyfabRnD5ggM1lG5rCBQAc=\n"
        "\xe2\x80\x94 aulac/au-lac-demo/witness/hust GiZ0vAAAAABpVbkAhqgUwQvjo4bLJvnyT9KX0QLcnh/7k"
        "sj4O6aNSjl/ifcKoqjM5IoDE2LniBJkGG/HFWxXYKuyHNt49KkZXWhICg==\n";
    assert_string_equal(f->hust_c.name, "aulac/au-lac-demo/witness/hust");
    assert_int_equal(f->hust_c.id, 0x1a2674bcu);
    char note[CHECKPOINT_SIGNED_MAX], out[CHECKPOINT_NOTE_MAX];
    size_t len, out_len;
    signed_note(f, 42, 0x50, note, &len);
    assert_int_equal(cosignature_add(note, len, ORIGIN, "hust", f->hust, 1767225600, out,
                                     sizeof out, &out_len), 0);
    assert_int_equal(out_len, strlen(want));
    assert_int_equal(out_len, 322);
    assert_string_equal(out, want);

    struct checkpoint c;
    uint64_t t = 0;
    char why[300];
    assert_int_equal(cosignature_verify(want, strlen(want), &f->log, &f->hust_c, &c, &t, why,
                                        sizeof why), 0);
    assert_int_equal(t, 1767225600);
    assert_int_equal(c.size, 42);
    /* the coordinator's signature still verifies: cosignatures are other keys' lines */
    assert_int_equal(checkpoint_verify(want, strlen(want), &f->log, &c, why, sizeof why), 0);
    assert_int_equal(cosignature_count_lines(want, strlen(want)), 2);
    /* the message signed */
    char msg[512];
    size_t mlen;
    assert_int_equal(cosignature_message(want, 66, 1767225600, msg, sizeof msg, &mlen), 0);
    msg[mlen] = '\0';
    assert_string_equal(msg, "cosignature/v1\ntime 1767225600\naulac/au-lac-demo\n42\n"
                             "UFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqa2xtbm8=\n");
    /* back to the coordinator's note alone */
    char base[CHECKPOINT_NOTE_MAX];
    size_t blen;
    assert_int_equal(cosignature_base_note(want, strlen(want), &f->log, base, sizeof base,
                                           &blen), 0);
    assert_int_equal(blen, len);
    assert_memory_equal(base, note, len);
}

static void wrong_keys_and_tampering(void **state)
{
    struct fix *f = *state;
    char note[CHECKPOINT_SIGNED_MAX], out[CHECKPOINT_NOTE_MAX], why[300];
    size_t len, out_len;
    signed_note(f, 7, 1, note, &len);
    assert_int_equal(cosignature_add(note, len, ORIGIN, "hust", f->hust, 1000, out, sizeof out,
                                     &out_len), 0);
    /* another member's key: no cosignature by it */
    assert_int_equal(cosignature_verify(out, out_len, &f->log, &f->fpt_c, NULL, NULL, why,
                                        sizeof why), LEDGER_ERR_NOTE_UNSIGNED);
    assert_non_null(strstr(why, "no cosignature by fpt"));
    /* hust's name and key ID but fpt's key: the line is taken as hust's and fails */
    struct cosigner forged = f->hust_c;
    memcpy(forged.public_key, f->fpt_c.public_key, 32);
    assert_int_equal(cosignature_verify(out, out_len, &f->log, &forged, NULL, NULL, why,
                                        sizeof why), LEDGER_ERR_NOTE_SIGNATURE);
    /* hust's name with fpt's key ID: no line of it */
    forged.id = cosignature_key_id(forged.name, forged.public_key);
    assert_int_equal(cosignature_verify(out, out_len, &f->log, &forged, NULL, NULL, why,
                                        sizeof why), LEDGER_ERR_NOTE_UNSIGNED);
    /* a cosignature made with fpt's key under hust's name and key ID */
    char fake[CHECKPOINT_NOTE_MAX];
    size_t fake_len;
    assert_int_equal(cosignature_add(note, len, ORIGIN, "hust", f->fpt, 1000, fake, sizeof fake,
                                     &fake_len), 0);
    char *line = strstr(fake, "witness/hust ") + strlen("witness/hust ");
    char *real = strstr(out, "witness/hust ") + strlen("witness/hust ");
    memcpy(line, real, 8);   /* hust's key ID and the time, then fpt's signature */
    assert_int_equal(cosignature_verify(fake, fake_len, &f->log, &f->hust_c, NULL, NULL, why,
                                        sizeof why), LEDGER_ERR_NOTE_SIGNATURE);
    assert_non_null(strstr(why, "does not verify"));
    /* another size in the text */
    char *size_line = strchr(out, '\n') + 1;
    *size_line = '8';
    assert_int_not_equal(cosignature_verify(out, out_len, &f->log, &f->hust_c, NULL, NULL, why,
                                            sizeof why), 0);
    /* a note not signed by the coordinator */
    struct checkpoint_key other = f->log;
    other.public_key[0] ^= 1;
    other.id = checkpoint_key_id(other.name, other.public_key);
    *size_line = '7';
    assert_int_equal(cosignature_verify(out, out_len, &other, &f->hust_c, NULL, NULL, why,
                                        sizeof why), LEDGER_ERR_NOTE_UNSIGNED);
    /* the time is signed: cosigning at 1001 gives another line */
    char later[CHECKPOINT_NOTE_MAX];
    size_t later_len;
    assert_int_equal(cosignature_add(note, len, ORIGIN, "hust", f->hust, 1001, later,
                                     sizeof later, &later_len), 0);
    assert_int_equal(later_len, out_len);
    assert_memory_not_equal(later, out, out_len);
    char *t_later = strstr(later, "witness/hust ") + strlen("witness/hust ");
    memcpy(t_later + 8, real + 8, 8);   /* 1000's time bytes (base64 chars 8..15: bytes 6..11) */
    assert_int_not_equal(cosignature_verify(later, later_len, &f->log, &f->hust_c, NULL, NULL,
                                            why, sizeof why), 0);
    /* no timestamp above 2^63 - 1 */
    assert_int_equal(cosignature_add(note, len, ORIGIN, "hust", f->hust, (uint64_t)INT64_MAX + 1,
                                     later, sizeof later, &later_len), LEDGER_ERR_ARG);
}

static void every_bit_flip_is_refused(void **state)
{
    struct fix *f = *state;
    char note[CHECKPOINT_SIGNED_MAX], out[CHECKPOINT_NOTE_MAX];
    size_t len, out_len;
    signed_note(f, 1234, 9, note, &len);
    assert_int_equal(cosignature_add(note, len, ORIGIN, "hust", f->hust, 1767225600, out,
                                     sizeof out, &out_len), 0);
    assert_int_equal(cosignature_verify(out, out_len, &f->log, &f->hust_c, NULL, NULL, NULL, 0), 0);
    for (size_t i = 0; i < out_len; i++)
        for (int b = 0; b < 8; b++) {
            char copy[CHECKPOINT_NOTE_MAX];
            memcpy(copy, out, out_len);
            copy[i] ^= (char)(1 << b);
            if (cosignature_verify(copy, out_len, &f->log, &f->hust_c, NULL, NULL, NULL, 0) == 0)
                fail_msg("a flip of bit %d of byte %zu still verifies", b, i);
        }
}

static void names_and_arguments(void **state)
{
    struct fix *f = *state;
    struct cosigner k;
    assert_int_equal(cosigner_init(&k, ORIGIN, "Bad Id", f->hust_c.public_key), LEDGER_ERR_ARG);
    assert_int_equal(cosigner_init(&k, "bad origin", "hust", f->hust_c.public_key),
                     LEDGER_ERR_ARG);
    /* type 0x04 key IDs differ from the 0x01 note key IDs of the same name and key */
    assert_int_not_equal(cosignature_key_id(f->hust_c.name, f->hust_c.public_key),
                         checkpoint_key_id(f->hust_c.name, f->hust_c.public_key));
    char out[64];
    size_t len;
    assert_int_equal(cosignature_message("no newline", 10, 1, out, sizeof out, &len),
                     LEDGER_ERR_ARG);
    assert_int_equal(cosignature_message("x\n", 2, 1, out, 8, &len), LEDGER_ERR_ARG);
    assert_int_equal(cosignature_add("not a note\n", 11, ORIGIN, "hust", f->hust, 1, out,
                                     sizeof out, &len), LEDGER_ERR_NOTE_FORMAT);
}

/* --- the cross-check ----------------------------------------------------------------- */

struct logs {
    uint8_t a[16][32], b[16][32];   /* two logs: equal for the first 5 leaves */
};

static void make_logs(struct logs *l)
{
    for (int i = 0; i < 16; i++) {
        char e[32];
        int n = snprintf(e, sizeof e, "entry %d", i);
        merkle_leaf_hash((const uint8_t *)e, (size_t)n, l->a[i]);
        n = snprintf(e, sizeof e, i < 5 ? "entry %d" : "forked entry %d", i);
        merkle_leaf_hash((const uint8_t *)e, (size_t)n, l->b[i]);
    }
}

/* The coordinator shows log a. */
static int proof_of_a(void *arg, uint64_t old_size, uint64_t new_size, uint8_t (*proof)[32],
                      size_t *len, char *why, size_t cap)
{
    struct logs *l = arg;
    if (new_size > 16) {
        snprintf(why, cap, "only 16 entries");
        return 1;
    }
    *len = MERKLE_PROOF_MAX;
    return merkle_consistency_proof((const uint8_t (*)[32])l->a, new_size, old_size, proof, len)
               ? -1 : 0;
}

static int proof_unreachable(void *arg, uint64_t old_size, uint64_t new_size,
                             uint8_t (*proof)[32], size_t *len, char *why, size_t cap)
{
    snprintf(why, cap, "UNAVAILABLE");
    return -7;
}

static void view(struct witness_view *v, const char *member, uint8_t (*leaves)[32], uint64_t n)
{
    memset(v, 0, sizeof *v);
    snprintf(v->member, sizeof v->member, "%s", member);
    snprintf(v->c.origin, sizeof v->c.origin, ORIGIN);
    v->c.size = n;
    assert_int_equal(merkle_root((const uint8_t (*)[32])leaves, n, v->c.root), 0);
}

static void cross_check_catches_a_split_view(void **state)
{
    (void)state;
    struct logs l;
    make_logs(&l);
    struct witness_view shown, v[4];
    struct witness_report r;
    view(&shown, "-", l.a, 10);
    /* one history: smaller, equal and larger trees of log a; self is not counted */
    view(&v[0], "fpt", l.a, 3);
    view(&v[1], "vnpt", l.a, 10);
    view(&v[2], "hust", l.a, 14);
    view(&v[3], "fpt", l.a, 12);
    assert_int_equal(witness_check(&shown.c, v, 4, "hust", proof_of_a, &l, &r), 0);
    assert_int_equal(r.consistent, 4);
    assert_int_equal(r.others, 2);
    assert_string_equal(r.others_list, "fpt (size 3), vnpt (size 10)");
    /* the common prefix of the fork is consistent too */
    view(&v[3], "vnpt", l.b, 5);
    assert_int_equal(witness_check(&shown.c, v, 4, NULL, proof_of_a, &l, &r), 0);
    /* a cosignature of log b past the fork: smaller, equal, larger than the one shown */
    static const uint64_t sizes[] = { 7, 10, 13 };
    for (size_t i = 0; i < 3; i++) {
        view(&v[3], "vnpt", l.b, sizes[i]);
        assert_int_equal(witness_check(&shown.c, v, 4, NULL, proof_of_a, &l, &r),
                         LEDGER_ERR_SPLIT_VIEW);
        char want[64];
        snprintf(want, sizeof want, "split view: vnpt cosigned the ledger at size %llu",
                 (unsigned long long)sizes[i]);
        assert_non_null(strstr(r.why, want));
        assert_non_null(strstr(r.why, "the checkpoint shown here (size 10"));
    }
    /* below the one shown, a fork's tree larger than the shown one's prefix */
    struct witness_view shown4, w[2];
    view(&shown4, "-", l.a, 4);
    view(&w[0], "fpt", l.a, 12);
    view(&w[1], "vnpt", l.b, 16);
    assert_int_equal(witness_check(&shown4.c, w, 2, NULL, proof_of_a, &l, &r),
                     LEDGER_ERR_SPLIT_VIEW);
    assert_non_null(strstr(r.why, "vnpt cosigned the ledger at size 16"));
    /* a coordinator that cannot be asked for a proof: no verdict either way */
    assert_int_equal(witness_check(&shown.c, w, 2, NULL, proof_unreachable, NULL, &r), -7);
    assert_non_null(strstr(r.why, "cannot check fpt's cosigned checkpoint of size 12 now"));
}

static void views_from_notes(void **state)
{
    struct fix *f = *state;
    char note[CHECKPOINT_SIGNED_MAX], out[CHECKPOINT_NOTE_MAX], both[CHECKPOINT_NOTE_MAX], why[300];
    size_t len, out_len, both_len, n = 0;
    signed_note(f, 3, 2, note, &len);
    assert_int_equal(cosignature_add(note, len, ORIGIN, "hust", f->hust, 50, out, sizeof out,
                                     &out_len), 0);
    assert_int_equal(cosignature_add(out, out_len, ORIGIN, "fpt", f->fpt, 60, both, sizeof both,
                                     &both_len), 0);
    struct cosigner set[2] = { f->fpt_c, f->hust_c };
    struct witness_view v[4];
    assert_int_equal(witness_views_from_note(both, both_len, &f->log, set, 2, v, 4, &n, why,
                                             sizeof why), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].member, "fpt");
    assert_int_equal(v[0].timestamp, 60);
    assert_string_equal(v[1].member, "hust");
    assert_int_equal(v[1].timestamp, 50);
    assert_int_equal(v[1].c.size, 3);
    /* a note without witnesses adds nothing; a bad cosignature by a witness is an error */
    assert_int_equal(witness_views_from_note(note, len, &f->log, set, 2, v, 4, &n, why,
                                             sizeof why), 0);
    assert_int_equal(n, 2);
    char *sig = strstr(both, "witness/fpt ") + strlen("witness/fpt ") + 20;
    *sig = *sig == 'A' ? 'B' : 'A';
    assert_int_equal(witness_views_from_note(both, both_len, &f->log, set, 2, v, 4, &n, why,
                                             sizeof why), LEDGER_ERR_NOTE_SIGNATURE);
    assert_non_null(strstr(why, "fpt"));
}

/* --- the store ------------------------------------------------------------------------ */

static int count_note(const char *member, const char *note, size_t len, uint64_t t, void *arg)
{
    char *seen = arg;
    size_t used = strlen(seen);
    snprintf(seen + used, 256 - used, "%s@%llu:%zu;", member, (unsigned long long)t, len);
    return 0;
}

static void store_keeps_each_members_latest(void **state)
{
    (void)state;
    char dir[256], cmd[300], seen[256] = "";
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/aulac-witness-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    struct ledger *l;
    struct witness_store *s;
    /* a read-only directory from before witnessing: no cosignatures */
    assert_int_equal(ledger_open(dir, NULL, &l), 0);
    ledger_close(l);
    struct ledger_options ro = { .read_only = 1 };
    assert_int_equal(ledger_open(dir, &ro, &l), 0);
    assert_int_equal(witness_store_open(l, &s), 0);
    assert_int_equal(witness_store_each(s, count_note, seen), 0);
    assert_string_equal(seen, "");
    int stored = 1;
    assert_int_equal(witness_store_put(s, "fpt", "x", 1, 1, &stored), LEDGER_ERR_READ_ONLY);
    witness_store_close(s);
    ledger_close(l);

    assert_int_equal(ledger_open(dir, NULL, &l), 0);
    assert_int_equal(witness_store_open(l, &s), 0);
    assert_int_equal(witness_store_put(s, "vnpt", "note-v", 6, 100, &stored), 0);
    assert_int_equal(stored, 1);
    assert_int_equal(witness_store_put(s, "fpt", "note-f1", 7, 200, &stored), 0);
    assert_int_equal(witness_store_put(s, "fpt", "old", 3, 150, &stored), 0);
    assert_int_equal(stored, 0);
    assert_int_equal(witness_store_put(s, "fpt", "note-f22", 8, 250, &stored), 0);
    assert_int_equal(stored, 1);
    assert_int_equal(witness_store_each(s, count_note, seen), 0);
    assert_string_equal(seen, "fpt@250:8;vnpt@100:6;");
    witness_store_close(s);
    ledger_close(l);
    /* and a reader sees them */
    seen[0] = '\0';
    assert_int_equal(ledger_open(dir, &ro, &l), 0);
    assert_int_equal(witness_store_open(l, &s), 0);
    assert_int_equal(witness_store_each(s, count_note, seen), 0);
    assert_string_equal(seen, "fpt@250:8;vnpt@100:6;");
    witness_store_close(s);
    ledger_close(l);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(reference_cosignature_vector, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_keys_and_tampering, setup, teardown),
        cmocka_unit_test_setup_teardown(every_bit_flip_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(names_and_arguments, setup, teardown),
        cmocka_unit_test(cross_check_catches_a_split_view),
        cmocka_unit_test_setup_teardown(views_from_notes, setup, teardown),
        cmocka_unit_test(store_keeps_each_members_latest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
