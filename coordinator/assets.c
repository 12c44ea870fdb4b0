/* The dashboard's static files (coordinator/http.h: assets_reply). The page, its script
 * and its style sheet come from a table compiled into the binary; the only file read at
 * run time is Chart.js, from one fixed path. A request path is only ever compared with
 * the table's names, so no path can reach the filesystem. */
#include "coordinator/http.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "coordinator/assets_table.h"
#include "coordinator/coord.h"

#define CHARTJS_MAX_BYTES (4u << 20)

/* Debian's libjs-chart.js: chart.umd.min.js from Chart.js 4, chart.min.js before. */
static const char *const chartjs_debian_paths[] = {
    "/usr/share/javascript/chart.js/chart.umd.min.js",
    "/usr/share/javascript/chart.js/chart.min.js",
    NULL,
};

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
                                .body = b, .len = n, .cache_control = "no-store" };
    return 0;
}

int assets_reply_chartjs(const char *chartjs_path, struct http_reply *out)
{
    const char *path = chartjs_path;
    for (int i = 0; !path && chartjs_debian_paths[i]; i++)
        if (file_exists(chartjs_debian_paths[i]))
            path = chartjs_debian_paths[i];
    if (!path)
        return reply_text(out, 404, "Chart.js is not installed (Debian: apt-get install "
                                    "libjs-chart.js, or --http-chartjs FILE)\n");
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = file_read_all(path, CHARTJS_MAX_BYTES, &data, &len);
    if (rc == -ENOMEM)
        return COORD_ERR_NOMEM;
    if (rc != 0)
        return reply_text(out, 404, "Chart.js cannot be read from the path given (--http-chartjs); Debian's "
                                    "is libjs-chart.js\n");
    *out = (struct http_reply){ .status = 200, .content_type = "text/javascript; charset=utf-8",
                                .body = (char *)data, .len = len,
                                .cache_control = "public, max-age=3600" };
    return 0;
}

int assets_reply(const char *path, struct http_reply *out)
{
    const char *name = NULL;
    if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0)
        name = "index.html";
    else if (strcmp(path, "/assets/chart.js") == 0)
        return assets_reply_chartjs(NULL, out);
    else if (strncmp(path, "/assets/", 8) == 0)
        name = path + 8;
    for (const struct asset_file *f = assets_table; name && f->name; f++) {
        if (strcmp(f->name, name) != 0)
            continue;
        char *b = malloc(f->len + 1);
        if (!b)
            return COORD_ERR_NOMEM;
        memcpy(b, f->data, f->len + 1);
        /* no-cache: a browser keeps the file but asks again with its ETag, so a wall
         * screen picks up a new coordinator's page on its next load */
        *out = (struct http_reply){ .status = 200, .content_type = content_type_of(f->name),
                                    .body = b, .len = f->len, .etag = f->etag,
                                    .cache_control = "no-cache" };
        return 0;
    }
    return reply_text(out, 404, "not found\n");
}
