#include "cli/client_tls.h"

#include "cli/cli.h"

int client_tls_option(struct client_tls *t, int ch, const char *arg)
{
    switch (ch) {
    case CT_TLS_CA: t->ca = arg; return 1;
    case CT_TLS_CERT: t->cert = arg; return 1;
    case CT_TLS_KEY: t->key = arg; return 1;
    case CT_TLS_NAME: t->server_name = arg; return 1;
    case CT_INSECURE: t->insecure = 1; return 1;
    }
    return 0;
}

int client_tls_given(const struct client_tls *t)
{
    return t->ca || t->cert || t->key || t->server_name || t->insecure;
}

int client_tls_check(const struct client_tls *t, const char *cmd, const char *usage)
{
    if (!t->ca && !t->insecure)
        return cli_usage_error(cmd, usage, "pass --tls-ca FILE (the alliance CA), or "
                               "--insecure for plaintext");
    if (t->insecure && (t->ca || t->cert || t->key || t->server_name))
        return cli_usage_error(cmd, usage, "--insecure (plaintext) contradicts the --tls-* "
                               "options");
    if (!t->cert != !t->key)
        return cli_usage_error(cmd, usage, "--tls-cert and --tls-key go together");
    return 0;
}

void client_tls_channel(const struct client_tls *t, struct rpc_channel_options *out)
{
    out->tls_ca_file = t->ca;
    out->tls_cert_file = t->cert;
    out->tls_key_file = t->key;
    out->tls_server_name_override = t->server_name;
}
