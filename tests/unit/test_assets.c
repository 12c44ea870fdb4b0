/* The dashboard's static files (coordinator/http.h: assets_reply): the compiled-in page,
 * script and style with their types, ETags and Cache-Control; only names of the fixed
 * table answer (no path reaches the filesystem); the page needs nothing but its own
 * origin (CSP default-src 'self': no inline script or style, no CDN) and never puts server
 * data through innerHTML; Chart.js is read from the path given, 404 when it is missing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/assets_table.h"
#include "coordinator/http.h"

static struct http_reply get(const char *path)
{
    struct http_reply r = { 0 };
    assert_int_equal(assets_reply(path, &r), 0);
    assert_non_null(r.body);
    assert_non_null(r.content_type);
    assert_int_equal(r.body[r.len], '\0');
    return r;
}

static void root_and_assets_answer_with_type_etag_and_cache_control(void **st)
{
    static const struct { const char *path, *type, *needle; } cases[] = {
        { "/", "text/html; charset=utf-8", "<title>aulac coordinator</title>" },
        { "/index.html", "text/html; charset=utf-8", "/assets/app.js" },
        { "/assets/app.js", "text/javascript; charset=utf-8", "/api/v1/" },
        { "/assets/style.css", "text/css; charset=utf-8", ".card" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct http_reply r = get(cases[i].path);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.content_type, cases[i].type);
        assert_non_null(strstr(r.body, cases[i].needle));
        assert_int_equal(strlen(r.body), r.len);
        assert_non_null(r.etag);
        assert_int_equal(strlen(r.etag), 34);            /* "\"" 32 hex "\"" */
        assert_int_equal(r.etag[0], '"');
        assert_string_equal(r.cache_control, "no-cache");
        free(r.body);
    }
    /* the same file, the same tag; another file, another tag */
    struct http_reply a = get("/"), b = get("/index.html"), c = get("/assets/app.js");
    assert_string_equal(a.etag, b.etag);
    assert_string_not_equal(a.etag, c.etag);
    free(a.body); free(b.body); free(c.body);
}

static void paths_outside_the_table_are_404(void **st)
{
    static const char *const paths[] = {
        "", "/assets", "/assets/", "/assets/../coordinator/coord.h", "/assets/./app.js",
        "/assets//app.js", "/assets/app.js/", "/assets/%2e%2e/Makefile", "/../../etc/passwd",
        "/etc/passwd", "/assets/assets_table.h", "/app.js", "/assets/APP.JS", "/index.htm",
        "/assets/index.html/..", "/api/v1/status", "/metrics",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct http_reply r = get(paths[i]);
        if (r.status != 404)
            fail_msg("%s: status %d, want 404", paths[i], r.status);
        assert_string_equal(r.body, "not found\n");
        assert_null(r.etag);
        free(r.body);
    }
}

/* Every table entry is a file of coordinator/assets/ byte for byte. */
static void table_holds_the_source_files(void **st)
{
    size_t n = 0;
    for (const struct asset_file *f = assets_table; f->name; f++, n++) {
        char path[256];
        snprintf(path, sizeof path, "coordinator/assets/%s", f->name);
        FILE *fp = fopen(path, "rb");
        if (!fp)
            fail_msg("%s: cannot open (run from the repository root)", path);
        char *buf = malloc(f->len + 2);
        assert_non_null(buf);
        size_t got = fread(buf, 1, f->len + 1, fp);
        fclose(fp);
        assert_int_equal(got, f->len);
        assert_memory_equal(buf, f->data, f->len);
        free(buf);
    }
    assert_int_equal(n, 3);
}

/* CSP default-src 'self': scripts only from src="/assets/...", no style attribute, no
 * other origin; app.js writes server data with textContent only. */
static void page_needs_only_its_own_origin(void **st)
{
    struct http_reply r = get("/");
    for (const char *p = r.body; (p = strstr(p, "<script")); p++) {
        const char *end = strchr(p, '>');
        assert_non_null(end);
        const char *src = strstr(p, " src=\"/assets/");
        if (!src || src > end)
            fail_msg("an inline script or one from elsewhere: %.60s", p);
        assert_memory_equal(end + 1, "</script>", 9);       /* nothing inline after it */
    }
    assert_null(strstr(r.body, "style="));
    assert_null(strstr(r.body, "<style"));
    assert_null(strstr(r.body, "http:"));
    assert_null(strstr(r.body, "https:"));
    assert_null(strstr(r.body, "//cdn"));
    for (const char *p = r.body; (p = strstr(p, " on")); p++) {   /* no onclick= etc. */
        size_t n = 3;
        while (p[n] >= 'a' && p[n] <= 'z')
            n++;
        if (n > 3 && p[n] == '=')
            fail_msg("an inline event handler: %.40s", p);
    }
    free(r.body);
    r = get("/assets/app.js");
    assert_null(strstr(r.body, "innerHTML"));
    assert_null(strstr(r.body, "outerHTML"));
    assert_null(strstr(r.body, "insertAdjacentHTML"));
    assert_null(strstr(r.body, "document.write"));
    assert_null(strstr(r.body, "eval("));
    assert_null(strstr(r.body, "http:"));
    assert_null(strstr(r.body, "https:"));
    free(r.body);
    r = get("/assets/style.css");
    assert_null(strstr(r.body, "url("));
    assert_null(strstr(r.body, "@import"));
    free(r.body);
}

static void chartjs_is_read_from_its_path_or_404(void **st)
{
    char path[] = "/tmp/aulac-chartjs-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char js[] = "/* not Chart.js, but its bytes are served as they are */\n";
    assert_int_equal(write(fd, js, sizeof js - 1), (ssize_t)(sizeof js - 1));
    close(fd);

    struct http_reply r = { 0 };
    assert_int_equal(assets_reply_chartjs(path, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/javascript; charset=utf-8");
    assert_int_equal(r.len, sizeof js - 1);
    assert_memory_equal(r.body, js, r.len);
    assert_non_null(r.cache_control);
    free(r.body);
    unlink(path);

    r = (struct http_reply){ 0 };
    assert_int_equal(assets_reply_chartjs(path, &r), 0);            /* gone now */
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "libjs-chart.js"));
    free(r.body);

    r = (struct http_reply){ 0 };
    assert_int_equal(assets_reply_chartjs("/tmp", &r), 0);          /* a directory */
    assert_int_equal(r.status, 404);
    free(r.body);

    /* /assets/chart.js: Debian's path when libjs-chart.js is installed, else a 404 that
     * says how to get it */
    r = get("/assets/chart.js");
    if (access("/usr/share/javascript/chart.js/chart.min.js", R_OK) == 0 ||
        access("/usr/share/javascript/chart.js/chart.umd.min.js", R_OK) == 0) {
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.body, "Chart.js"));
    } else {
        assert_int_equal(r.status, 404);
    }
    free(r.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(root_and_assets_answer_with_type_etag_and_cache_control),
        cmocka_unit_test(paths_outside_the_table_are_404),
        cmocka_unit_test(table_holds_the_source_files),
        cmocka_unit_test(page_needs_only_its_own_origin),
        cmocka_unit_test(chartjs_is_read_from_its_path_or_404),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
