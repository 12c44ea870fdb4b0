/* Writes valid codec payloads (every quantization, sparse and dense, raw and zstd) into
 * a directory as the seed corpus of fuzz_codec_decode. Used by scripts/fuzz.sh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "codec/codec.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const size_t n = 700;
    float v[700];
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v[i] = (i % 9 == 0) ? 0.0f : (float)((int64_t)(s >> 40) - (1 << 23)) * 1e-9f;
    }
    int written = 0;
    for (int q = 0; q < CODEC_QUANT_COUNT; q++)
        for (int z = 0; z <= 3; z += 3)
            for (unsigned k = 4; k <= 256; k *= 8) {
                struct codec_params p;
                codec_params_default(&p);
                p.block_size = 128;
                p.k_per_block = k;
                p.quant = (enum codec_quant)q;
                p.zstd_level = z;
                p.error_feedback = 0;
                uint8_t *pl;
                size_t len;
                if (codec_encode(v, n, &p, NULL, &pl, &len))
                    return 1;
                char path[4096];
                snprintf(path, sizeof path, "%s/seed-q%d-z%d-k%u", argv[1], q, z, k);
                FILE *f = fopen(path, "wb");
                if (!f || fwrite(pl, 1, len, f) != len || fclose(f))
                    return 1;
                free(pl);
                written++;
            }
    printf("%d codec seeds in %s\n", written, argv[1]);
    return 0;
}
