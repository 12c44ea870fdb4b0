/* HTML text and inline SVG line charts (cli/html.h). */
#include "cli/html.h"

#include <math.h>
#include <string.h>

void html_text(FILE *f, const char *s)
{
    if (!s)
        return;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        case '\t': case '\n': case '\r': fputc(*p, f); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fputs("&#xfffd;", f);
            else
                fputc(*p, f);
        }
    }
}

/* Colour-blind-safe (Okabe-Ito), then a few more. */
static const char *const palette[] = {
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#56b4e9", "#f0e442", "#000000",
    "#7f3c8d", "#11a579", "#3969ac", "#f2b701", "#e73f74", "#80ba5a",
};
#define N_COLORS (sizeof palette / sizeof palette[0])

const char *svg_color(int i)
{
    if (i < 0)
        i = -i;
    return palette[(size_t)i % N_COLORS];
}

void svg_axes_fit(struct svg_axes *a, const struct svg_series *s, size_t n)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (size_t k = 0; k < n; k++) {
        for (size_t i = 0; i < s[k].n; i++) {
            double x = s[k].x[i], y = s[k].y[i];
            if (!isfinite(x) || !isfinite(y))
                continue;
            x0 = fmin(x0, x);
            x1 = fmax(x1, x);
            y0 = fmin(y0, y);
            y1 = fmax(y1, y);
        }
    }
    if (!(x0 <= x1)) {
        a->x0 = 0, a->x1 = 1, a->y0 = 0, a->y1 = 1;
        return;
    }
    if (x1 == x0) {
        x0 -= 0.5;
        x1 += 0.5;
    }
    if (y1 == y0) {
        double d = fabs(y0) > 0 ? 0.1 * fabs(y0) : 1;
        y0 -= d;
        y1 += d;
    } else {
        double d = 0.05 * (y1 - y0);
        y0 -= d;
        y1 += d;
    }
    a->x0 = x0, a->x1 = x1, a->y0 = y0, a->y1 = y1;
}

double svg_x(const struct svg_axes *a, double x)
{
    return a->left + (x - a->x0) / (a->x1 - a->x0) * a->width;
}

double svg_y(const struct svg_axes *a, double y)
{
    return a->top + a->height - (y - a->y0) / (a->y1 - a->y0) * a->height;
}

size_t svg_ticks(double lo, double hi, size_t max, double min_step, double *ticks)
{
    if (max == 0 || !isfinite(lo) || !isfinite(hi) || hi < lo)
        return 0;
    if (hi == lo) {
        ticks[0] = lo;
        return 1;
    }
    double raw = (hi - lo) / (double)(max > 1 ? max - 1 : 1);
    double p = pow(10, floor(log10(raw)));
    double step = p;
    if (raw > 5 * p)
        step = 10 * p;
    else if (raw > 2 * p)
        step = 5 * p;
    else if (raw > p)
        step = 2 * p;
    if (step < min_step)
        step = min_step;
    size_t n = 0;
    double first = ceil(lo / step - 1e-9) * step;
    for (double t = first; t <= hi + step * 1e-9 && n < max; t = first + (double)n * step) {
        ticks[n++] = fabs(t) < step * 1e-9 ? 0 : t;   /* no "-0" */
    }
    return n;
}

/* Attribute-safe number. */
static void num(FILE *f, double v)
{
    fprintf(f, "%.1f", v);
}

void svg_line_chart(FILE *f, const struct svg_chart *c, const struct svg_series *s, size_t n)
{
    const double legend_w = 150, ml = 64, mr = 16 + legend_w, mt = 34, mb = 46;
    struct svg_axes a = {
        .left = ml, .top = mt, .width = c->width - ml - mr, .height = c->height - mt - mb };
    svg_axes_fit(&a, s, n);
    /* inline in HTML: no xmlns needed, and no URL of any kind in the document */
    fprintf(f, "<svg class=\"chart\" data-chart=\"");
    html_text(f, c->id);
    fprintf(f, "\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n<title>",
            c->width, c->height, c->width, c->height);
    html_text(f, c->title);
    fprintf(f, "</title>\n<text class=\"ct\" x=\"%.1f\" y=\"18\">", ml);
    html_text(f, c->title);
    fprintf(f, "</text>\n");

    /* grid, ticks and labels */
    double ticks[12];
    size_t nt = svg_ticks(a.y0, a.y1, 6, 0, ticks);
    for (size_t i = 0; i < nt; i++) {
        double y = svg_y(&a, ticks[i]);
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>\n",
                a.left, a.left + a.width, y, y, a.left - 6, y + 4, ticks[i]);
    }
    double xl = c->integer_x ? ceil(a.x0) : a.x0, xh = c->integer_x ? floor(a.x1) : a.x1;
    nt = svg_ticks(xl, xh, 10, c->integer_x ? 1 : 0, ticks);
    for (size_t i = 0; i < nt; i++) {
        if (c->integer_x && ticks[i] != floor(ticks[i]))
            continue;
        double x = svg_x(&a, ticks[i]);
        fprintf(f, "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.4g</text>\n",
                x, x, a.top + a.height, a.top + a.height + 5, x, a.top + a.height + 18,
                ticks[i]);
    }
    fprintf(f, "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
            "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n",
            a.left, a.left + a.width, a.top + a.height, a.top + a.height,
            a.left, a.left, a.top, a.top + a.height);
    fprintf(f, "<text class=\"label\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">",
            a.left + a.width / 2, c->height - 8);
    html_text(f, c->x_label);
    fprintf(f, "</text><text class=\"label\" transform=\"translate(14 %.1f) rotate(-90)\" "
            "text-anchor=\"middle\">", a.top + a.height / 2);
    html_text(f, c->y_label);
    fprintf(f, "</text>\n");

    /* series: a path broken at skipped points, a circle per point, a legend line */
    for (size_t k = 0; k < n; k++) {
        const struct svg_series *q = &s[k];
        const char *col = svg_color(q->color);
        fprintf(f, "<g class=\"series\" data-%s=\"", q->member ? "member" : "series");
        html_text(f, q->member ? q->member : q->name);
        fprintf(f, "\"><path fill=\"none\" stroke=\"%s\" stroke-width=\"2\" d=\"", col);
        int pen = 0;
        for (size_t i = 0; i < q->n; i++) {
            if (!isfinite(q->x[i]) || !isfinite(q->y[i])) {
                pen = 0;
                continue;
            }
            fputc(pen ? 'L' : 'M', f);
            num(f, svg_x(&a, q->x[i]));
            fputc(' ', f);
            num(f, svg_y(&a, q->y[i]));
            pen = 1;
        }
        fprintf(f, "\"/>\n");
        for (size_t i = 0; i < q->n; i++) {
            if (!isfinite(q->x[i]) || !isfinite(q->y[i]))
                continue;
            fprintf(f, "<circle data-%s=\"", q->member ? "member" : "series");
            html_text(f, q->member ? q->member : q->name);
            fprintf(f, "\" data-round=\"%.0f\" data-value=\"%.9g\" cx=\"%.1f\" cy=\"%.1f\" "
                    "r=\"3.5\" fill=\"%s\"><title>", q->x[i], q->y[i], svg_x(&a, q->x[i]),
                    svg_y(&a, q->y[i]), col);
            html_text(f, q->name);
            fprintf(f, ", round %.0f: %.6g</title></circle>\n", q->x[i], q->y[i]);
        }
        double ly = a.top + 8 + 18.0 * (double)k, lx = c->width - legend_w;
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                "stroke-width=\"3\"/><text class=\"legend\" x=\"%.1f\" y=\"%.1f\">", lx,
                lx + 18, ly, ly, col, lx + 24, ly + 4);
        html_text(f, q->name);
        fprintf(f, "</text></g>\n");
    }
    fprintf(f, "</svg>\n");
}
