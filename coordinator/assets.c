/* The dashboard's static files (coordinator/http.h: assets_reply): the page, its script
 * and its style sheet, from a table compiled into the binary. A request path is only ever
 * compared with the table's names, so no path can reach the filesystem. (Chart.js is the
 * server's: coordinator/http.c reads it once at start from Debian's libjs-chart.js.) */
#include "coordinator/http.h"

#include <stdlib.h>
#include <string.h>

#include "coordinator/assets_table.h"
#include "coordinator/coord.h"

static const char *content_type_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot && strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (dot && strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (dot && strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (dot && strcmp(dot, ".svg") == 0)
        return "image/svg+xml";
    return "application/octet-stream";
}

static int reply_text(struct http_reply *out, int status, const char *text)
{
    size_t n = strlen(text);
    char *b = malloc(n + 1);
    if (!b)
        return COORD_ERR_NOMEM;
    memcpy(b, text, n + 1);
    *out = (struct http_reply){ .status = status, .content_type = "text/plain; charset=utf-8",
                                .body = b, .len = n };
    return 0;
}

int assets_reply(const char *path, struct http_reply *out)
{
    const char *name = NULL;
    if (strcmp(path, "/") == 0)
        name = "index.html";
    else if (strncmp(path, "/assets/", 8) == 0)
        name = path + 8;
    for (const struct asset_file *f = assets_table; name && f->name; f++) {
        if (strcmp(f->name, name) != 0)
            continue;
        char *b = malloc(f->len + 1);
        if (!b)
            return COORD_ERR_NOMEM;
        memcpy(b, f->data, f->len + 1);
        *out = (struct http_reply){ .status = 200, .content_type = content_type_of(f->name),
                                    .body = b, .len = f->len };
        return 0;
    }
    return reply_text(out, 404, "not found\n");
}
