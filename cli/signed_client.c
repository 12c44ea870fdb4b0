#include "cli/signed_client.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int signed_client_option(struct signed_client *s, int ch, const char *arg)
{
    switch (ch) {
    case SC_COORDINATOR: s->coordinator = arg; return 1;
    case SC_MEMBER: s->member = arg; return 1;
    case SC_KEY: s->key_path = arg; return 1;
    }
    return client_tls_option(&s->tls, ch, arg);
}

int signed_client_open(struct signed_client *s, const char *cmd, const char *usage)
{
    if (!s->coordinator)
        return cli_usage_error(cmd, usage, "--coordinator is required");
    if (!s->member || !s->key_path)
        return cli_usage_error(cmd, usage, "--member and --key are required: requests are "
                               "signed with the member's key");
    int rc = client_tls_check(&s->tls, cmd, usage);
    if (rc != 0)
        return rc;
    if (s->tls.insecure)
        fprintf(stderr, "aulac %s: warning: plaintext connection (--insecure); the request "
                "is still signed\n", cmd);
    rc = crypto_key_load(s->key_path, &s->key);
    if (rc != 0)
        return cli_fail(cmd, "cannot use the key %s: %s%s", s->key_path, crypto_strerror(rc),
                        rc == CRYPTO_ERR_KEY_PERMS ? " (run: chmod 600 on it)" : "");
    if (strcmp(crypto_key_member(s->key), s->member) != 0)
        return cli_fail(cmd, "the key %s belongs to '%s', not to --member '%s'", s->key_path,
                        crypto_key_member(s->key), s->member);
    struct fed_client_options co = { 0 };
    client_tls_channel(&s->tls, &co.channel);
    co.call_timeout_ms = 15000;
    co.stream_timeout_ms = s->stream_timeout_ms;
    co.identity = s->key;
    if ((rc = fed_client_open(s->coordinator, &co, &s->fc)) != 0)
        return cli_fail(cmd, "cannot open a channel to %s: %s", s->coordinator,
                        rpc_strerror(rc));
    Aulac__V1__HelloRequest q = AULAC__V1__HELLO_REQUEST__INIT;
    q.client_version = "aulac-cli 0.1";
    q.member_id = (char *)s->member;
    Aulac__V1__HelloReply *r = NULL;
    struct rpc_status st = { 0 };
    if ((rc = fed_hello(s->fc, &q, &r, &st)) != 0)
        return cli_fail(cmd, "cannot reach the coordinator at %s: %s", s->coordinator,
                        st.details[0] ? st.details : rpc_strerror(rc));
    snprintf(s->alliance, sizeof s->alliance, "%s", r->alliance ? r->alliance : "");
    if (r->coordinator_public_key.len == 32)
        memcpy(s->coordinator_key, r->coordinator_public_key.data, 32);
    aulac__v1__hello_reply__free_unpacked(r, NULL);
    return 0;
}

void signed_client_close(struct signed_client *s)
{
    fed_client_close(s->fc);
    s->fc = NULL;
    crypto_key_free(s->key);
    s->key = NULL;
}
