#ifndef AULAC_BENCH_LOOPBACK_COPY_H
#define AULAC_BENCH_LOOPBACK_COPY_H
/* The baselines bench/scale measures gRPC's model download against: one buffer copied
 * over loopback TCP to `count` receivers at once, each on its own connection from its
 * own sender thread, in plain TCP or in TLS 1.3 with OpenSSL (the library the
 * coordinator's gRPC uses). Both ends run in this process: 2 × count threads and
 * 2 × count + 1 descriptors while a copy runs; connections and handshakes are made
 * before the clock starts. The sender writes 1 MiB at a time (SSL_write splits it into
 * records of 16 KiB), the receiver reads into a 1 MiB buffer. A copy blocks until it is
 * done, with no time limit (loopback). The threads block SIGPIPE for themselves: a
 * connection the other end reset fails with EPIPE. Benches only. */
#include <stddef.h>
#include <stdint.h>

/* TLS for loopback_copy: the server's certificate chain and key (PEM files), the CA
 * that signed it (the receivers verify the sender with it) and the one TLS 1.3 cipher
 * suite both ends offer (an OpenSSL name, e.g. "TLS_AES_256_GCM_SHA384"). */
struct loopback_tls {
    const char *cert_file, *key_file, *ca_file;
    const char *suite;
};

/* What a copy measured. */
struct loopback_result {
    double bytes_per_s;   /* all receivers' bytes over the wall time */
    double cpu_s;         /* this process's CPU time over the copy: both ends, and
                             whatever else of the process runs meanwhile */
    char suite[64];       /* the suite negotiated ("" in plain TCP) */
};

/* Copies buf[0, len) to count receivers at once; tls NULL for plain TCP. 0, or -1 with
 * what failed in err. */
int loopback_copy(const uint8_t *buf, size_t len, int count, const struct loopback_tls *tls,
                  struct loopback_result *out, char *err, size_t errlen);

/* The TLS version and cipher suite that the server at 127.0.0.1:port negotiates with an
 * OpenSSL client offering OpenSSL's defaults and ALPN "h2" (as gRPC's client does), the
 * server's chain verified against ca_file (no host name check), within 10 s. 0, or -1
 * with why in err. */
int loopback_tls_probe(int port, const char *ca_file, char *version, size_t vlen, char *suite,
                       size_t slen, char *err, size_t errlen);

#endif
