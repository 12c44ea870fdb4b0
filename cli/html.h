#ifndef AULAC_CLI_HTML_H
#define AULAC_CLI_HTML_H
/* HTML text and inline SVG line charts for aulac report: everything the report writes
 * that comes from the ledger goes through html_text / html_attr, so a member-controlled
 * string (a rejection reason) can never open a tag, close an attribute or start a
 * script; and the charts are plain SVG (no script, no external reference). */
#include <stddef.h>
#include <stdio.h>

/* Writes s as HTML text or as the value of a double-quoted attribute: & < > " ' become
 * &amp; &lt; &gt; &quot; &#39;, C0 control characters other than tab, newline and
 * carriage return and DEL become U+FFFD (&#xfffd;); other bytes as they are (the document
 * is UTF-8; a byte sequence that is no UTF-8 shows as U+FFFD in the browser). NULL
 * writes nothing. */
void html_text(FILE *f, const char *s);

/* One series of a chart: n points (x[i], y[i]); a point whose y (or x) is not finite is
 * skipped: no circle, and the line breaks there. */
struct svg_series {
    const char   *name;          /* legend text */
    const char   *member;        /* member id: data-member on each point; NULL: data-series
                                    = name instead (a series that is no member's) */
    int           color;         /* index into the palette (same member, same color) */
    size_t        n;
    const double *x, *y;
};

/* The mapping from values to SVG coordinates: [x0, x1] onto [left, left + width] and
 * [y0, y1] onto [top + height, top] (y grows upward on screen). */
struct svg_axes {
    double x0, x1, y0, y1;
    double left, top, width, height;
};

/* Fits the ranges to the finite points of the series: x from min to max, y from min to
 * max with 5 % room above and below. A flat range (one value) is widened by 1 (x) or
 * by 10 % of |value| or 1 (y), so the mapping never divides by zero; with no finite point
 * at all the ranges are [0, 1]. The plot area (left, top, width, height) is left as is. */
void svg_axes_fit(struct svg_axes *a, const struct svg_series *s, size_t n);

/* Value to coordinate under a. */
double svg_x(const struct svg_axes *a, double x);
double svg_y(const struct svg_axes *a, double y);

/* Up to max "nice" tick values (1, 2 or 5 times a power of ten apart, and at least
 * min_step apart: 1 for rounds) within [lo, hi] into ticks; returns how many. */
size_t svg_ticks(double lo, double hi, size_t max, double min_step, double *ticks);

/* A line chart: an <svg> of width x height pixels with a <title>, axes with ticks,
 * x_label under the x axis, y_label beside the y axis, a legend, and for each series a
 * <path> through its points and a <circle> per point with data-member (or
 * data-series), data-round (x, as an integer) and data-value (y, %.9g). id goes into the
 * svg's data-chart attribute. integer_x: ticks of x at integers only (rounds). */
struct svg_chart {
    const char *id, *title, *x_label, *y_label;
    int width, height;
    int integer_x;
};
void svg_line_chart(FILE *f, const struct svg_chart *c, const struct svg_series *s, size_t n);

/* The palette: color i (any i >= 0, wrapping) as "#rrggbb". */
const char *svg_color(int i);

#endif
