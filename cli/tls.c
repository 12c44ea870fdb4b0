/* aulac tls: the alliance's certificate authority and the TLS certificates of
 * its coordinator and members, made with the openssl program (EC P-256, SHA-256).
 * Private keys are written 0600 under a 077 umask; nothing runs through a shell. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fileio.h"
#include "common/hex.h"
#include "crypto/digest.h"

static const char usage[] =
    "usage: aulac tls init  --dir DIR [--name NAME] [--days N] [--force]\n"
    "       aulac tls issue --ca-dir DIR --name NAME (--server | --client)\n"
    "                       [--dns NAME]... [--ip ADDR]... [--out DIR] [--days N] [--force]\n"
    "\n"
    "Makes the TLS material of an alliance with the openssl program:\n"
    "\n"
    "  init   the alliance CA: DIR/ca.pem (give it to everyone) and DIR/ca.key (mode 0600;\n"
    "         keep it offline). Workers and the CLI check the coordinator against ca.pem\n"
    "         (--tls-ca); the coordinator checks client certificates against it when mutual\n"
    "         TLS is on (--tls-client-ca, --require-client-cert).\n"
    "  issue  a certificate signed by the CA: OUT/NAME.pem and OUT/NAME.key (mode 0600).\n"
    "         --server: for the coordinator (--tls-cert, --tls-key); its names are the --dns\n"
    "         and --ip given (default: localhost and 127.0.0.1). --client: for a member's\n"
    "         worker or CLI under mutual TLS (--tls-cert, --tls-key).\n"
    "\n"
    "  --dir DIR       where init writes the CA (created 0700)\n"
    "  --ca-dir DIR    the CA that signs (ca.pem, ca.key)\n"
    "  --name NAME     init: the CA's name (default \"aulac alliance\"); issue: the\n"
    "                  certificate's common name and file name ([a-z0-9._-])\n"
    "  --dns NAME      a DNS name of the server (repeatable)\n"
    "  --ip ADDR       an IP address of the server (repeatable)\n"
    "  --out DIR       where issue writes (default: the CA directory)\n"
    "  --days N        validity (default: init 3650, issue 825)\n"
    "  --force         replace existing files\n"
    "\n"
    "Member requests are signed with member keys on top of TLS (crypto/README.md), so\n"
    "TLS protects the traffic and the coordinator's identity; it is not what makes a\n"
    "member who it is.\n";

#define MAX_SANS 16

/* Runs openssl with argv (argv[0] = "openssl"), its output into log_path.
 * 0 when it exits 0; otherwise prints its output and returns 1. */
static int run_openssl(char *const argv[], const char *log_path)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return cli_fail("tls", "cannot start openssl: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int devnull = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (devnull >= 0)
            dup2(devnull, 0);
        umask(077);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        unlink(log_path);
        return 0;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        unlink(log_path);
        return cli_fail("tls", "the openssl program is not installed (apt-get install openssl)");
    }
    fprintf(stderr, "aulac tls: openssl %s failed:\n", argv[1]);
    FILE *f = fopen(log_path, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        fprintf(stderr, "  %s", line);
    if (f)
        fclose(f);
    unlink(log_path);
    return 1;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int name_ok(const char *s, int allow_space)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                 c == '-' || (allow_space && ((c >= 'A' && c <= 'Z') || c == ' '));
        if (!ok)
            return 0;
    }
    return s[0] != '.' && s[0] != '-';
}

static int dns_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || (c == '*' && i == 0)))
            return 0;
    }
    return 1;
}

static int tls_init(const char *dir, const char *name, unsigned long long days, int force)
{
    char key[PATH_MAX], pem[PATH_MAX], log[PATH_MAX], subj[200], dstr[24];
    int rc = file_mkdirs(dir, 0700);
    if (rc != 0)
        return cli_fail("tls", "cannot create %s: %s", dir, strerror(-rc));
    snprintf(key, sizeof key, "%s/ca.key", dir);
    snprintf(pem, sizeof pem, "%s/ca.pem", dir);
    snprintf(log, sizeof log, "%s/.openssl.log", dir);
    if (!force && (exists(key) || exists(pem)))
        return cli_fail("tls", "%s already holds a CA (ca.key, ca.pem); use --force to "
                        "replace it (every certificate it issued stops being trusted)", dir);
    unlink(key);
    snprintf(subj, sizeof subj, "/O=%s/CN=%s CA", name, name);
    snprintf(dstr, sizeof dstr, "%llu", days);
    char *argv[] = { "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:prime256v1", "-nodes", "-sha256", "-days", dstr,
                     "-subj", subj, "-keyout", key, "-out", pem, "-addext",
                     "basicConstraints=critical,CA:TRUE,pathlen:0", "-addext",
                     "keyUsage=critical,keyCertSign,cRLSign", NULL };
    if (run_openssl(argv, log) != 0)
        return 1;
    if (chmod(key, 0600) != 0 || chmod(pem, 0644) != 0)
        return cli_fail("tls", "cannot set the modes of %s and %s: %s", key, pem,
                        strerror(errno));
    printf("alliance CA \"%s\", valid %llu days\n  certificate: %s (give it to the "
           "coordinator and every member: --tls-ca)\n  private key: %s (mode 0600; keep it "
           "offline)\n", name, days, pem, key);
    return 0;
}

static int tls_issue(const char *ca_dir, const char *name, int server, const char **dns,
                     int n_dns, const char **ips, int n_ips, const char *out,
                     unsigned long long days, int force)
{
    char ca_key[PATH_MAX], ca_pem[PATH_MAX], key[PATH_MAX], pem[PATH_MAX], csr[PATH_MAX];
    char ext[PATH_MAX], log[PATH_MAX], subj[100], dstr[24], serial[40], text[2048];
    snprintf(ca_key, sizeof ca_key, "%s/ca.key", ca_dir);
    snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", ca_dir);
    if (!exists(ca_key) || !exists(ca_pem))
        return cli_fail("tls", "%s has no CA (ca.pem and ca.key): run aulac tls init first",
                        ca_dir);
    int rc = file_mkdirs(out, 0700);
    if (rc != 0)
        return cli_fail("tls", "cannot create %s: %s", out, strerror(-rc));
    snprintf(key, sizeof key, "%s/%s.key", out, name);
    snprintf(pem, sizeof pem, "%s/%s.pem", out, name);
    snprintf(csr, sizeof csr, "%s/%s.csr", out, name);
    snprintf(ext, sizeof ext, "%s/%s.ext", out, name);
    snprintf(log, sizeof log, "%s/.openssl.log", out);
    if (!force && (exists(key) || exists(pem)))
        return cli_fail("tls", "%s or %s exists; use --force to replace it", key, pem);
    unlink(key);

    static const char *default_dns[] = { "localhost" };
    static const char *default_ip[] = { "127.0.0.1" };
    if (server && n_dns == 0 && n_ips == 0) {
        dns = default_dns, n_dns = 1;
        ips = default_ip, n_ips = 1;
    }
    size_t used = (size_t)snprintf(text, sizeof text,
                                   "basicConstraints=critical,CA:FALSE\n"
                                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                                   "extendedKeyUsage=%s\n",
                                   server ? "serverAuth" : "clientAuth");
    if (n_dns + n_ips > 0) {
        used += (size_t)snprintf(text + used, sizeof text - used, "subjectAltName=");
        for (int i = 0; i < n_dns && used < sizeof text; i++)
            used += (size_t)snprintf(text + used, sizeof text - used, "%sDNS:%s", i ? "," : "",
                                     dns[i]);
        for (int i = 0; i < n_ips && used < sizeof text; i++)
            used += (size_t)snprintf(text + used, sizeof text - used, "%sIP:%s",
                                     i || n_dns ? "," : "", ips[i]);
        used += (size_t)snprintf(text + used, sizeof text - used, "\n");
    }
    if (used >= sizeof text)
        return cli_fail("tls", "too many names");
    if ((rc = file_write_atomic(ext, text, used, 0600)) != 0)
        return cli_fail("tls", "cannot write %s", ext);

    uint8_t rnd[16];
    if (crypto_init() != 0)
        return cli_fail("tls", "libsodium failed to start");
    randombytes_buf(rnd, sizeof rnd);
    rnd[0] &= 0x7f;   /* a positive serial */
    strcpy(serial, "0x");
    hex_encode(rnd, sizeof rnd, serial + 2);
    snprintf(subj, sizeof subj, "/CN=%s", name);
    snprintf(dstr, sizeof dstr, "%llu", days);
    char *req[] = { "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-subj", subj, "-keyout", key,
                    "-out", csr, NULL };
    char *sign[] = { "openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
                     "-set_serial", serial, "-days", dstr, "-sha256", "-extfile", ext,
                     "-out", pem, NULL };
    rc = run_openssl(req, log);
    if (rc == 0)
        rc = run_openssl(sign, log);
    unlink(csr);
    unlink(ext);
    if (rc != 0)
        return rc;
    if (chmod(key, 0600) != 0 || chmod(pem, 0644) != 0)
        return cli_fail("tls", "cannot set the modes of %s and %s: %s", key, pem,
                        strerror(errno));
    printf("%s certificate \"%s\" signed by %s, valid %llu days\n  certificate: %s\n  "
           "private key: %s (mode 0600)\n", server ? "server" : "client", name, ca_pem, days,
           pem, key);
    if (n_dns + n_ips > 0)
        printf("  names: %.*s", (int)strcspn(strstr(text, "subjectAltName=") + 15, "\n") + 1,
               strstr(text, "subjectAltName=") + 15);
    return 0;
}

int cmd_tls(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    int init = strcmp(sub, "init") == 0;
    if (!init && strcmp(sub, "issue") != 0)
        return cli_usage_error("tls", usage, "unknown subcommand '%s' (init or issue)", sub);
    const char *dir = NULL, *ca_dir = NULL, *name = NULL, *out = NULL;
    const char *dns[MAX_SANS], *ips[MAX_SANS];
    int n_dns = 0, n_ips = 0, server = -1, force = 0, ch;
    unsigned long long days = init ? 3650 : 825;
    enum { O_DIR = 300, O_CADIR, O_NAME, O_DNS, O_IP, O_OUT, O_DAYS, O_FORCE, O_SERVER,
           O_CLIENT };
    static const struct option lo[] = {
        { "dir", required_argument, 0, O_DIR }, { "ca-dir", required_argument, 0, O_CADIR },
        { "name", required_argument, 0, O_NAME }, { "dns", required_argument, 0, O_DNS },
        { "ip", required_argument, 0, O_IP }, { "out", required_argument, 0, O_OUT },
        { "days", required_argument, 0, O_DAYS }, { "force", no_argument, 0, O_FORCE },
        { "server", no_argument, 0, O_SERVER }, { "client", no_argument, 0, O_CLIENT },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    optind = 1;
    while ((ch = getopt_long(argc - 1, argv + 1, "h", lo, NULL)) != -1) {
        switch (ch) {
        case O_DIR: dir = optarg; break;
        case O_CADIR: ca_dir = optarg; break;
        case O_NAME: name = optarg; break;
        case O_OUT: out = optarg; break;
        case O_FORCE: force = 1; break;
        case O_SERVER:
        case O_CLIENT:
            if (server >= 0 && server != (ch == O_SERVER))
                return cli_usage_error("tls", usage, "--server and --client exclude each other");
            server = ch == O_SERVER;
            break;
        case O_DNS:
            if (n_dns == MAX_SANS || !dns_ok(optarg))
                return cli_usage_error("tls", usage, "--dns '%s': not a DNS name (or more "
                                       "than %d names)", optarg, MAX_SANS);
            dns[n_dns++] = optarg;
            break;
        case O_IP: {
            unsigned char buf[16];
            if (n_ips == MAX_SANS || (inet_pton(AF_INET, optarg, buf) != 1 &&
                                      inet_pton(AF_INET6, optarg, buf) != 1))
                return cli_usage_error("tls", usage, "--ip '%s': not an IP address", optarg);
            ips[n_ips++] = optarg;
            break;
        }
        case O_DAYS:
            if (cli_parse_u64("tls", "--days", optarg, &days) != 0)
                return 2;
            if (days < 1 || days > 36500)
                return cli_usage_error("tls", usage, "--days must be 1..36500");
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc - 1)
        return cli_usage_error("tls", usage, "unexpected argument '%s'", argv[optind + 1]);
    if (init) {
        if (!dir)
            return cli_usage_error("tls", usage, "--dir is required");
        if (!name)
            name = "aulac alliance";
        if (!name_ok(name, 1))
            return cli_usage_error("tls", usage, "--name: 1..64 of letters, digits, space, "
                                   "'.', '_', '-'");
        if (ca_dir || out || server >= 0 || n_dns || n_ips)
            return cli_usage_error("tls", usage, "init takes --dir, --name, --days, --force");
        return tls_init(dir, name, days, force);
    }
    if (!ca_dir || !name)
        return cli_usage_error("tls", usage, "--ca-dir and --name are required");
    if (!name_ok(name, 0))
        return cli_usage_error("tls", usage, "--name: 1..64 of [a-z0-9._-]");
    if (server < 0)
        return cli_usage_error("tls", usage, "say --server or --client");
    if (!server && (n_dns || n_ips))
        return cli_usage_error("tls", usage, "--dns and --ip are for --server certificates");
    return tls_issue(ca_dir, name, server, dns, n_dns, ips, n_ips, out ? out : ca_dir, days,
                     force);
}
