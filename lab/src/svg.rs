//! Dependency-free SVG plots for the lab's report: each builder renders one complete, standalone
//! SVG document (`report/README.md` embeds them as `<img src="plots/x.svg">`).
//!
//! # Layout
//!
//! - [`Cdf`]: empirical CDF step curves of labelled samples (startup delay per scenario).
//! - [`LinePlot`] and [`Series`]: labelled `(x, y)` series as lines with markers, optional
//!   `y_min..y_max` error bars per point and an optional fixed axis range.
//! - [`BarChart`]: bars per category, optionally grouped into series, with value labels.
//! - [`Histogram`]: buckets samples of fixed width into a [`BarChart`] (labels like `0–100`).
//! - [`Timeline`]: one row per client with red blocks for intervals (stalls, media gaps) and
//!   dashed, labelled marker lines at event times (faults).
//! - Shared pieces: [`nice_step`] and [`nice_ticks`] (1-2-5 ticks), [`escape`], [`PALETTE`];
//!   privately `Doc` (the document being written), `Area` (the plot rectangle in px), `Axis`
//!   (value to px mapping and its tick labels), the legend and the number formatting.
//!
//! # Conventions
//!
//! - Every document is [`WIDTH`] x [`HEIGHT`] px (a timeline with many rows grows taller), white
//!   background, `font-family="sans-serif"`, a title, axis labels, grid lines at "nice" ticks,
//!   and a legend above the plot when there is more than one series.
//! - Output is deterministic: no randomness, no hash-ordered state, coordinates written with at
//!   most two decimals (trailing zeros trimmed), one element per line, so plots diff cleanly.
//! - Values that are not finite, or whose magnitude exceeds 1e15, are skipped. A plot with
//!   nothing left to draw renders its title and a centred "no data".
//! - All text (titles, labels, categories) is XML-escaped.
//! - Rendering cannot fail and never panics: bad input is skipped or replaced by a sane default
//!   (documented on each builder).
//!
//! # Example
//!
//! ```
//! use meshcast_lab::svg::{BarChart, Cdf, Histogram, LinePlot, Series, Timeline};
//!
//! let cdf = Cdf::new("Startup delay", "ms")
//!     .series("4-node", &[310.0, 280.0, 450.0])
//!     .series("50-node", &[520.0, 610.0, 480.0])
//!     .to_svg();
//! let line = LinePlot::new("Continuity vs loss", "loss %", "continuity index")
//!     .y_range(0.9, 1.0)
//!     .series(Series::new("min over clients").points(&[(0.0, 1.0), (5.0, 0.999)]))
//!     .series(Series::new("mean").ranged_points(&[(0.0, 1.0, 1.0, 1.0), (5.0, 0.9995, 0.999, 1.0)]))
//!     .to_svg();
//! let bars = BarChart::new("Link stress", "link", "streams").bar("n1-n2", 1.0).bar("n2-n3", 2.0).to_svg();
//! let hist = Histogram::new("Repair time", "ms", 100.0).series("kill n3", &[40.0, 120.0, 130.0]).to_svg();
//! let timeline = Timeline::new("Stalls around faults", "s since start", (0.0, 60.0))
//!     .row("c1", &[(10.2, 10.5)])
//!     .row("c2", &[])
//!     .marker(10.0, "kill n3")
//!     .to_svg();
//! for svg in [cdf, line, bars, hist, timeline] {
//!     assert!(svg.starts_with("<svg"));
//! }
//! ```

/// Width of every document in px.
pub const WIDTH: u32 = 720;
/// Height of every document in px (a [`Timeline`] with many rows grows beyond it).
pub const HEIGHT: u32 = 400;

/// Series colours, in order of use: the Okabe–Ito colour-blind-safe palette without its yellow
/// (too pale on white). Series beyond its length reuse it, told apart by their marker shape.
pub const PALETTE: [&str; 7] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000",
];

/// Colour of timeline intervals: the palette's vermillion, a red that colour-blind readers
/// still tell from the grey grid.
const INTERVAL_COLOUR: &str = "#D55E00";
/// Grid lines: light enough to stay behind the data.
const GRID_COLOUR: &str = "#dddddd";
/// Axis frame, tick labels and marker lines.
const INK: &str = "#333333";
/// Values beyond this magnitude are skipped: they would overflow the axis arithmetic and no
/// meshcast measurement comes near it.
const LIMIT: f64 = 1e15;
/// Histograms are capped at this many buckets (wider buckets are used beyond it).
const MAX_BUCKETS: i64 = 200;

const MARGIN_LEFT: f64 = 72.0;
const MARGIN_RIGHT: f64 = 24.0;
const MARGIN_TOP: f64 = 40.0;
const MARGIN_BOTTOM: f64 = 52.0;
const LEGEND_ROW: f64 = 18.0;
const FONT: f64 = 12.0;
const SMALL_FONT: f64 = 10.0;
const TITLE_FONT: f64 = 16.0;

// ---------------------------------------------------------------------------------------------
// Numbers and text
// ---------------------------------------------------------------------------------------------

/// Whether `v` can be placed on an axis.
fn usable(v: f64) -> bool {
    v.is_finite() && v.abs() <= LIMIT
}

/// `floor`, except that a quotient within rounding noise of an integer counts as that integer.
fn floor_tol(q: f64) -> f64 {
    let r = q.round();
    if (q - r).abs() < 1e-9 { r } else { q.floor() }
}

/// `ceil`, except that a quotient within rounding noise of an integer counts as that integer.
fn ceil_tol(q: f64) -> f64 {
    let r = q.round();
    if (q - r).abs() < 1e-9 { r } else { q.ceil() }
}

/// `v` with at most `decimals` decimals, trailing zeros trimmed, never `-0`.
fn fixed(v: f64, decimals: usize) -> String {
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".to_string();
    }
    s
}

/// A pixel coordinate as written into the document.
fn px(v: f64) -> String {
    fixed(v, 2)
}

/// `v` rounded to `digits` significant digits (at most 6 decimals), for value labels.
fn significant(v: f64, digits: i32) -> String {
    if v == 0.0 || !v.is_finite() {
        return fixed(v, 0);
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).clamp(0, 6);
    fixed(v, decimals as usize)
}

/// Decimals a tick label needs to tell ticks `step` apart.
fn decimals_for(step: f64) -> usize {
    ceil_tol(-step.log10()).clamp(0.0, 12.0) as usize
}

/// Escapes `text` for use as XML character data or attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// Rough width in px of `text` at `size` px: sans-serif glyphs average about 0.55 em.
fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.55
}

/// `text` cut to at most `max` characters, the cut marked with an ellipsis.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

// ---------------------------------------------------------------------------------------------
// Ticks and axes
// ---------------------------------------------------------------------------------------------

/// The 1-2-5 step (1, 2 or 5 times a power of ten) that splits `span` into at most about
/// `target` intervals. A span that is not positive and finite gets step 1.
pub fn nice_step(span: f64, target: usize) -> f64 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let mantissa = if norm <= 1.0 + 1e-9 {
        1.0
    } else if norm <= 2.0 + 1e-9 {
        2.0
    } else if norm <= 5.0 + 1e-9 {
        5.0
    } else {
        10.0
    };
    mantissa * magnitude
}

/// Ticks at multiples of [`nice_step`] from the last one at or below `lo` to the first one at
/// or above `hi` (swapped if `hi < lo`). A degenerate range is widened around its value and a
/// non-finite one replaced by `0..1`, so the result always holds at least two increasing ticks.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    ticks_covering(lo, hi, target, 0.0).0
}

/// [`nice_ticks`] with a step of at least `min_step` (1 for counts), and the step used.
fn ticks_covering(lo: f64, hi: f64, target: usize, min_step: f64) -> (Vec<f64>, f64) {
    let (lo, hi) = widen(lo, hi);
    let step = nice_step(hi - lo, target).max(min_step);
    let first = floor_tol(lo / step) as i64;
    let last = ceil_tol(hi / step) as i64;
    ((first..=last).map(|i| i as f64 * step).collect(), step)
}

/// Ticks at multiples of [`nice_step`] that lie inside `lo..=hi` (for a fixed axis range).
fn ticks_inside(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    let step = nice_step(hi - lo, target);
    let first = ceil_tol(lo / step) as i64;
    let last = floor_tol(hi / step) as i64;
    ((first..=last).map(|i| i as f64 * step).collect(), step)
}

/// An ordered, usable, non-degenerate range: swaps reversed ends, widens a (nearly) empty
/// range around its value, and replaces unusable ends by `0..1`.
fn widen(lo: f64, hi: f64) -> (f64, f64) {
    if !(usable(lo) && usable(hi)) {
        return (0.0, 1.0);
    }
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    let scale = lo.abs().max(hi.abs());
    if hi - lo > (scale * 1e-9).max(1e-12) {
        return (lo, hi);
    }
    let pad = (scale * 0.1).max(0.5);
    (lo - pad, hi + pad)
}

/// The smallest and largest of `values`, if any.
fn extent(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Maps values of one dimension to px and knows its tick labels.
#[derive(Clone, Debug)]
struct Axis {
    /// Value at the low end of the plot area.
    lo: f64,
    /// Value at the high end of the plot area.
    hi: f64,
    /// Whether positions follow `log10` of the value.
    log: bool,
    /// Tick values with their labels, increasing.
    ticks: Vec<(f64, String)>,
}

impl Axis {
    /// A linear axis whose ends are the ticks around `lo..hi`.
    fn covering(lo: f64, hi: f64, target: usize) -> Axis {
        Axis::covering_with_min_step(lo, hi, target, 0.0)
    }

    /// [`Axis::covering`] with ticks at least `min_step` apart (1 when plotting counts, so
    /// no tick reads "0.5 clients").
    fn covering_with_min_step(lo: f64, hi: f64, target: usize, min_step: f64) -> Axis {
        let (ticks, step) = ticks_covering(lo, hi, target, min_step);
        let decimals = decimals_for(step);
        let lo = ticks.first().copied().unwrap_or(0.0);
        let hi = ticks.last().copied().unwrap_or(1.0);
        let ticks = ticks.into_iter().map(|t| (t, fixed(t, decimals))).collect();
        Axis {
            lo,
            hi,
            log: false,
            ticks,
        }
    }

    /// A linear axis from exactly `lo` to `hi` (widened if degenerate), ticks inside it.
    fn fixed(lo: f64, hi: f64, target: usize) -> Axis {
        let (lo, hi) = widen(lo, hi);
        let (ticks, step) = ticks_inside(lo, hi, target);
        let decimals = decimals_for(step);
        let ticks = ticks.into_iter().map(|t| (t, fixed(t, decimals))).collect();
        Axis {
            lo,
            hi,
            log: false,
            ticks,
        }
    }

    /// A log10 axis over whole decades around `lo..hi` (both must be positive); ticks at each
    /// decade, and at 2 and 5 times it when the axis spans at most two decades.
    fn log(lo: f64, hi: f64) -> Axis {
        let first = floor_tol(lo.log10()) as i32;
        let last = (ceil_tol(hi.log10()) as i32).max(first + 1);
        let decades = last - first;
        let stride = (decades / 8 + 1) as usize;
        let mut ticks = Vec::new();
        for d in (first..=last).step_by(stride) {
            let decade = 10f64.powi(d);
            ticks.push((decade, fixed(decade, 12)));
            if decades <= 2 && d < last {
                for m in [2.0, 5.0] {
                    ticks.push((m * decade, fixed(m * decade, 12)));
                }
            }
        }
        Axis {
            lo: 10f64.powi(first),
            hi: 10f64.powi(last),
            log: true,
            ticks,
        }
    }

    /// Where `v` lies between the ends: 0 at `lo`, 1 at `hi`.
    fn fraction(&self, v: f64) -> f64 {
        if self.log {
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    /// Horizontal px of `v` in `area`.
    fn x(&self, area: &Area, v: f64) -> f64 {
        area.left + self.fraction(v) * area.width()
    }

    /// Vertical px of `v` in `area` (low values at the bottom).
    fn y(&self, area: &Area, v: f64) -> f64 {
        area.bottom - self.fraction(v) * area.height()
    }
}

// ---------------------------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------------------------

/// The plot rectangle in px.
#[derive(Clone, Copy, Debug)]
struct Area {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

impl Area {
    /// The plot rectangle of a `width` x `height` document whose legend (or marker labels)
    /// takes `extra_top` px under the title.
    fn new(width: f64, height: f64, left: f64, extra_top: f64) -> Area {
        Area {
            left,
            top: MARGIN_TOP + extra_top,
            right: width - MARGIN_RIGHT,
            bottom: height - MARGIN_BOTTOM,
        }
    }

    fn width(&self) -> f64 {
        self.right - self.left
    }

    fn height(&self) -> f64 {
        self.bottom - self.top
    }
}

/// An SVG document being written, one element per line.
#[derive(Debug)]
struct Doc {
    out: String,
}

impl Doc {
    /// Opens a `width` x `height` document with white background and `title`.
    fn new(width: f64, height: f64, title: &str) -> Doc {
        let (w, h) = (px(width), px(height));
        let mut doc = Doc { out: String::new() };
        doc.line(&format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="{}">"#,
            px(FONT)
        ));
        doc.line(&format!("<title>{}</title>", escape(title)));
        doc.line(&format!(
            r##"<rect width="{w}" height="{h}" fill="#ffffff"/>"##
        ));
        let max_chars = ((width - 20.0) / (TITLE_FONT * 0.55)) as usize;
        doc.text(
            width / 2.0,
            26.0,
            "middle",
            &format!(r#" font-size="{}" font-weight="bold""#, px(TITLE_FONT)),
            &truncate(title, max_chars),
        );
        doc
    }

    fn line(&mut self, element: &str) {
        self.out.push_str(element);
        self.out.push('\n');
    }

    /// A `<text>` element; `attrs` is empty or starts with a space.
    fn text(&mut self, x: f64, y: f64, anchor: &str, attrs: &str, content: &str) {
        self.line(&format!(
            r#"<text x="{}" y="{}" text-anchor="{anchor}"{attrs}>{}</text>"#,
            px(x),
            px(y),
            escape(content)
        ));
    }

    fn hline(&mut self, x1: f64, x2: f64, y: f64, colour: &str) {
        self.line(&format!(
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="1"/>"#,
            px(x1),
            px(y),
            px(x2),
            px(y)
        ));
    }

    fn vline(&mut self, x: f64, y1: f64, y2: f64, colour: &str, attrs: &str) {
        self.line(&format!(
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="1"{attrs}/>"#,
            px(x),
            px(y1),
            px(x),
            px(y2)
        ));
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str) {
        self.line(&format!(
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}"/>"#,
            px(x),
            px(y),
            px(w),
            px(h)
        ));
    }

    /// Vertical grid lines and labels below the area at `axis`'s ticks.
    fn x_ticks(&mut self, area: &Area, axis: &Axis) {
        for (value, label) in &axis.ticks {
            let x = axis.x(area, *value);
            self.vline(x, area.top, area.bottom, GRID_COLOUR, "");
            self.text(x, area.bottom + 16.0, "middle", &fill_attr(INK), label);
        }
    }

    /// Horizontal grid lines and labels left of the area at `axis`'s ticks.
    fn y_ticks(&mut self, area: &Area, axis: &Axis) {
        for (value, label) in &axis.ticks {
            let y = axis.y(area, *value);
            self.hline(area.left, area.right, y, GRID_COLOUR);
            self.text(area.left - 6.0, y + 4.0, "end", &fill_attr(INK), label);
        }
    }

    /// The frame around the plot area.
    fn frame(&mut self, area: &Area) {
        self.line(&format!(
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="{INK}" stroke-width="1"/>"#,
            px(area.left),
            px(area.top),
            px(area.width()),
            px(area.height())
        ));
    }

    /// The x axis label under the tick labels and the y axis label turned along the left edge.
    fn axis_labels(&mut self, area: &Area, x_label: &str, y_label: &str) {
        let centre = (area.left + area.right) / 2.0;
        self.text(centre, area.bottom + 38.0, "middle", "", x_label);
        if !y_label.is_empty() {
            let middle = (area.top + area.bottom) / 2.0;
            self.line(&format!(
                r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
                px(middle),
                escape(y_label)
            ));
        }
    }

    /// Clips what follows (until `</g>`) to `area` grown by `margin` px, so markers on the edge
    /// of a fixed range stay whole while values outside it do not spill over the labels.
    fn open_clip(&mut self, area: &Area, margin: f64) {
        self.line("<defs>");
        self.line(r#"<clipPath id="plot-area">"#);
        self.line(&format!(
            r#"<rect x="{}" y="{}" width="{}" height="{}"/>"#,
            px(area.left - margin),
            px(area.top - margin),
            px(area.width() + 2.0 * margin),
            px(area.height() + 2.0 * margin)
        ));
        self.line("</clipPath>");
        self.line("</defs>");
        self.line(r#"<g clip-path="url(#plot-area)">"#);
    }

    fn finish(mut self) -> String {
        self.line("</svg>");
        self.out
    }
}

fn fill_attr(colour: &str) -> String {
    format!(r#" fill="{colour}""#)
}

/// The document of a plot with nothing to draw: its title and a centred "no data".
fn no_data(title: &str) -> String {
    let (width, height) = (f64::from(WIDTH), f64::from(HEIGHT));
    let mut doc = Doc::new(width, height, title);
    doc.text(
        width / 2.0,
        height / 2.0,
        "middle",
        r##" fill="#888888" font-size="16""##,
        "no data",
    );
    doc.finish()
}

/// The colour of series `index`.
fn colour(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

/// A point marker: circle, square, diamond or triangle by `index`, so series that share a
/// colour (or readers who cannot tell colours apart) still differ.
fn marker(index: usize, x: f64, y: f64, colour: &str) -> String {
    let (xs, ys) = (px(x), px(y));
    match index % 4 {
        0 => format!(r#"<circle cx="{xs}" cy="{ys}" r="3.5" fill="{colour}"/>"#),
        1 => format!(
            r#"<rect x="{}" y="{}" width="7" height="7" fill="{colour}"/>"#,
            px(x - 3.5),
            px(y - 3.5)
        ),
        2 => format!(
            r#"<polygon points="{xs},{} {},{ys} {xs},{} {},{ys}" fill="{colour}"/>"#,
            px(y - 4.5),
            px(x + 4.5),
            px(y + 4.5),
            px(x - 4.5)
        ),
        _ => format!(
            r#"<polygon points="{xs},{} {},{} {},{}" fill="{colour}"/>"#,
            px(y - 4.5),
            px(x + 4.0),
            px(y + 3.5),
            px(x - 4.0),
            px(y + 3.5)
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Legend
// ---------------------------------------------------------------------------------------------

/// How a legend entry shows its series.
#[derive(Clone, Copy, Debug)]
enum Swatch {
    /// A line with the series' marker (line plots, CDFs).
    Line { index: usize },
    /// A filled block (bar charts).
    Block { index: usize },
}

/// Legend entries laid out in rows between the title and the plot.
#[derive(Debug)]
struct Legend {
    /// `(label, swatch, x, row)` of each entry.
    entries: Vec<(String, Swatch, f64, usize)>,
    /// Number of rows used.
    rows: usize,
}

impl Legend {
    /// Lays `items` out left to right, wrapping at the document's right margin. Fewer than two
    /// items need no legend: the title names the one series.
    fn new(items: Vec<(String, Swatch)>, width: f64) -> Legend {
        if items.len() < 2 {
            return Legend {
                entries: Vec::new(),
                rows: 0,
            };
        }
        let right = width - MARGIN_RIGHT;
        let max_chars = ((right - MARGIN_LEFT - 30.0) / (FONT * 0.55)) as usize;
        let mut entries = Vec::new();
        let (mut x, mut row) = (MARGIN_LEFT, 0);
        for (label, swatch) in items {
            let label = truncate(&label, max_chars);
            let item_width = 30.0 + text_width(&label, FONT) + 18.0;
            if x > MARGIN_LEFT && x + item_width - 18.0 > right {
                x = MARGIN_LEFT;
                row += 1;
            }
            entries.push((label, swatch, x, row));
            x += item_width;
        }
        Legend {
            entries,
            rows: row + 1,
        }
    }

    /// Height taken under the title.
    fn height(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.rows as f64 * LEGEND_ROW + 6.0
        }
    }

    fn draw(&self, doc: &mut Doc) {
        for (label, swatch, x, row) in &self.entries {
            let y = MARGIN_TOP + 9.0 + *row as f64 * LEGEND_ROW;
            match *swatch {
                Swatch::Line { index } => {
                    let c = colour(index);
                    doc.line(&format!(
                        r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{c}" stroke-width="2"/>"#,
                        px(*x),
                        px(y),
                        px(x + 22.0),
                        px(y)
                    ));
                    doc.line(&marker(index, x + 11.0, y, c));
                }
                Swatch::Block { index } => doc.rect(*x + 4.0, y - 6.0, 14.0, 12.0, colour(index)),
            }
            doc.text(x + 28.0, y + 4.0, "start", "", label);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CDF
// ---------------------------------------------------------------------------------------------

/// The empirical CDF of `samples` as `(value, fraction of samples <= value)` for each distinct
/// usable value, increasing; unusable samples (NaN, infinite) are left out of the count.
pub fn cdf_steps(samples: &[f64]) -> Vec<(f64, f64)> {
    let mut values: Vec<f64> = samples.iter().copied().filter(|v| usable(*v)).collect();
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    let mut steps: Vec<(f64, f64)> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let fraction = (i + 1) as f64 / n;
        match steps.last_mut() {
            Some(last) if last.0 == *v => last.1 = fraction,
            _ => steps.push((*v, fraction)),
        }
    }
    steps
}

/// Empirical CDF step curves of labelled samples: y is the fraction of samples at or below x.
///
/// ```
/// # use meshcast_lab::svg::Cdf;
/// let svg = Cdf::new("Startup delay", "ms").series("4-node", &[310.0, 280.0]).log_x(true).to_svg();
/// # assert!(svg.contains(">Startup delay<"));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use = "a plot builder does nothing until `to_svg`"]
pub struct Cdf {
    title: String,
    x_label: String,
    /// Defaults to "fraction of clients": the lab's CDFs have one sample per client.
    y_label: String,
    /// Log-scale x for samples spanning decades; non-positive samples are then skipped.
    log_x: bool,
    /// `(label, samples)` in drawing (and legend) order.
    series: Vec<(String, Vec<f64>)>,
}

impl Cdf {
    /// A CDF titled `title` whose x axis (the measured value) is labelled `x_label`.
    pub fn new(title: impl Into<String>, x_label: impl Into<String>) -> Cdf {
        Cdf {
            title: title.into(),
            x_label: x_label.into(),
            y_label: "fraction of clients".to_string(),
            log_x: false,
            series: Vec::new(),
        }
    }

    /// Replaces the y axis label (default "fraction of clients").
    pub fn y_label(mut self, label: impl Into<String>) -> Cdf {
        self.y_label = label.into();
        self
    }

    /// Uses a log10 x axis; samples `<= 0` cannot be placed on it and are skipped.
    pub fn log_x(mut self, on: bool) -> Cdf {
        self.log_x = on;
        self
    }

    /// Adds one curve.
    pub fn series(mut self, label: impl Into<String>, samples: &[f64]) -> Cdf {
        self.series.push((label.into(), samples.to_vec()));
        self
    }

    /// Renders the document.
    pub fn to_svg(&self) -> String {
        let keep = |v: &f64| usable(*v) && (!self.log_x || *v > 0.0);
        let curves: Vec<Vec<(f64, f64)>> = self
            .series
            .iter()
            .map(|(_, samples)| {
                let kept: Vec<f64> = samples.iter().copied().filter(keep).collect();
                cdf_steps(&kept)
            })
            .collect();
        let Some((lo, hi)) = extent(curves.iter().flatten().map(|(v, _)| *v)) else {
            return no_data(&self.title);
        };
        let x_axis = if self.log_x {
            Axis::log(lo, hi)
        } else {
            Axis::covering(lo, hi, 8)
        };
        let y_axis = Axis::fixed(0.0, 1.0, 5);
        let (width, height) = (f64::from(WIDTH), f64::from(HEIGHT));
        let legend = Legend::new(
            self.series
                .iter()
                .enumerate()
                .map(|(index, (label, _))| (label.clone(), Swatch::Line { index }))
                .collect(),
            width,
        );
        let area = Area::new(width, height, MARGIN_LEFT, legend.height());
        let mut doc = Doc::new(width, height, &self.title);
        legend.draw(&mut doc);
        doc.x_ticks(&area, &x_axis);
        doc.y_ticks(&area, &y_axis);
        for (index, steps) in curves.iter().enumerate() {
            if steps.is_empty() {
                continue;
            }
            let mut points = vec![(steps[0].0, 0.0)];
            let mut previous = 0.0;
            for (v, fraction) in steps {
                points.push((*v, previous));
                points.push((*v, *fraction));
                previous = *fraction;
            }
            if let Some((last, _)) = steps.last()
                && *last < x_axis.hi
            {
                points.push((x_axis.hi, 1.0));
            }
            let px_points: Vec<(f64, f64)> = points
                .iter()
                .map(|(v, f)| (x_axis.x(&area, *v), y_axis.y(&area, *f)))
                .collect();
            doc.line(&format!(
                r#"<path class="cdf" d="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
                path_data(&px_points),
                colour(index)
            ));
        }
        doc.frame(&area);
        doc.axis_labels(&area, &self.x_label, &self.y_label);
        doc.finish()
    }
}

/// `M x,y L x,y ...` through `points`, dropping points that round to the previous one.
fn path_data(points: &[(f64, f64)]) -> String {
    let mut out = String::new();
    let mut previous = String::new();
    for (x, y) in points {
        let point = format!("{},{}", px(*x), px(*y));
        if point == previous {
            continue;
        }
        out.push_str(if out.is_empty() { "M" } else { " L" });
        out.push_str(&point);
        previous = point;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Line plot
// ---------------------------------------------------------------------------------------------

/// One point of a [`Series`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    /// `(y_min, y_max)` drawn as an error bar: the spread (e.g. over clients) behind `y`.
    pub range: Option<(f64, f64)>,
}

/// A labelled series of a [`LinePlot`]; drawn in order of increasing x.
#[derive(Clone, Debug, PartialEq)]
#[must_use = "a series is drawn only once added to a `LinePlot`"]
pub struct Series {
    label: String,
    points: Vec<Point>,
}

impl Series {
    /// An empty series named `label` in the legend.
    pub fn new(label: impl Into<String>) -> Series {
        Series {
            label: label.into(),
            points: Vec::new(),
        }
    }

    /// Appends `(x, y)` points.
    pub fn points(mut self, points: &[(f64, f64)]) -> Series {
        self.points
            .extend(points.iter().map(|&(x, y)| Point { x, y, range: None }));
        self
    }

    /// Appends `(x, y, y_min, y_max)` points, each drawn with an error bar from `y_min` to
    /// `y_max` (a bar with a non-finite end is left out, the point is kept).
    pub fn ranged_points(mut self, points: &[(f64, f64, f64, f64)]) -> Series {
        self.points
            .extend(points.iter().map(|&(x, y, lo, hi)| Point {
                x,
                y,
                range: Some((lo, hi)),
            }));
        self
    }
}

/// Labelled `(x, y)` series drawn as lines with point markers.
///
/// ```
/// # use meshcast_lab::svg::{LinePlot, Series};
/// let svg = LinePlot::new("Control overhead", "nodes", "datagrams per round")
///     .series(Series::new("announce").points(&[(4.0, 10.0), (50.0, 143.0)]))
///     .to_svg();
/// # assert!(svg.contains(">Control overhead<"));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use = "a plot builder does nothing until `to_svg`"]
pub struct LinePlot {
    title: String,
    x_label: String,
    y_label: String,
    /// Fixed y range (e.g. 0.9..1.0 so continuity differences show); `None` fits the data.
    y_range: Option<(f64, f64)>,
    series: Vec<Series>,
}

impl LinePlot {
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> LinePlot {
        LinePlot {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            y_range: None,
            series: Vec::new(),
        }
    }

    /// Fixes the y axis to `lo..hi`; what lies outside is clipped.
    pub fn y_range(mut self, lo: f64, hi: f64) -> LinePlot {
        self.y_range = Some((lo, hi));
        self
    }

    /// Adds a series.
    pub fn series(mut self, series: Series) -> LinePlot {
        self.series.push(series);
        self
    }

    /// Renders the document.
    pub fn to_svg(&self) -> String {
        let kept: Vec<Vec<Point>> = self
            .series
            .iter()
            .map(|s| {
                let mut points: Vec<Point> = s
                    .points
                    .iter()
                    .filter(|p| usable(p.x) && usable(p.y))
                    .map(|p| Point {
                        range: p.range.filter(|(lo, hi)| usable(*lo) && usable(*hi)),
                        ..*p
                    })
                    .collect();
                points.sort_by(|a, b| a.x.total_cmp(&b.x));
                points
            })
            .collect();
        let all = || kept.iter().flatten();
        let Some((x_lo, x_hi)) = extent(all().map(|p| p.x)) else {
            return no_data(&self.title);
        };
        let y_values = all().flat_map(|p| {
            let (lo, hi) = p.range.unwrap_or((p.y, p.y));
            [p.y, lo, hi]
        });
        let (y_lo, y_hi) = extent(y_values).unwrap_or((0.0, 1.0));
        let x_axis = Axis::covering(x_lo, x_hi, 8);
        let y_axis = match self.y_range {
            Some((lo, hi)) => Axis::fixed(lo, hi, 6),
            None => Axis::covering(y_lo, y_hi, 6),
        };
        let (width, height) = (f64::from(WIDTH), f64::from(HEIGHT));
        let legend = Legend::new(
            self.series
                .iter()
                .enumerate()
                .map(|(index, s)| (s.label.clone(), Swatch::Line { index }))
                .collect(),
            width,
        );
        let area = Area::new(width, height, MARGIN_LEFT, legend.height());
        let mut doc = Doc::new(width, height, &self.title);
        legend.draw(&mut doc);
        doc.x_ticks(&area, &x_axis);
        doc.y_ticks(&area, &y_axis);
        doc.open_clip(&area, 6.0);
        for (index, points) in kept.iter().enumerate() {
            let c = colour(index);
            let at = |p: &Point| (x_axis.x(&area, p.x), y_axis.y(&area, p.y));
            if points.len() >= 2 {
                let list: Vec<String> = points
                    .iter()
                    .map(|p| {
                        let (x, y) = at(p);
                        format!("{},{}", px(x), px(y))
                    })
                    .collect();
                doc.line(&format!(
                    r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#,
                    list.join(" ")
                ));
            }
            for p in points {
                let Some((lo, hi)) = p.range else { continue };
                let x = x_axis.x(&area, p.x);
                let (y1, y2) = (y_axis.y(&area, lo), y_axis.y(&area, hi));
                doc.line(&format!(
                    r#"<path class="error-bar" d="M{x},{y1} L{x},{y2} M{l},{y1} L{r},{y1} M{l},{y2} L{r},{y2}" stroke="{c}" stroke-width="1"/>"#,
                    x = px(x),
                    y1 = px(y1),
                    y2 = px(y2),
                    l = px(x - 3.0),
                    r = px(x + 3.0)
                ));
            }
            for p in points {
                let (x, y) = at(p);
                doc.line(&marker(index, x, y, c));
            }
        }
        doc.line("</g>");
        doc.frame(&area);
        doc.axis_labels(&area, &self.x_label, &self.y_label);
        doc.finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Bar chart and histogram
// ---------------------------------------------------------------------------------------------

/// One series of a [`BarChart`]: a value per category (by index; missing or NaN = no bar).
#[derive(Clone, Debug, PartialEq)]
struct BarSeries {
    label: String,
    values: Vec<f64>,
}

/// Bars per category, optionally grouped into series (side by side within a category), each
/// with its value written on top. The y axis always includes 0.
///
/// ```
/// # use meshcast_lab::svg::BarChart;
/// let single = BarChart::new("Link stress", "link", "streams").bar("n1-n2", 1.0).bar("n2-n3", 2.0);
/// let grouped = BarChart::new("Stretch", "client", "stretch")
///     .categories(["c1", "c2"])
///     .series("tree", &[1.2, 1.4])
///     .series("unicast", &[1.0, 1.0]);
/// # assert!(single.to_svg().contains("n1-n2") && grouped.to_svg().contains("unicast"));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use = "a plot builder does nothing until `to_svg`"]
pub struct BarChart {
    title: String,
    x_label: String,
    y_label: String,
    categories: Vec<String>,
    series: Vec<BarSeries>,
}

impl BarChart {
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> BarChart {
        BarChart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            categories: Vec::new(),
            series: Vec::new(),
        }
    }

    /// Appends a category whose first series (created unlabelled if need be) has `value`.
    pub fn bar(mut self, category: impl Into<String>, value: f64) -> BarChart {
        let index = self.categories.len();
        self.categories.push(category.into());
        if self.series.is_empty() {
            self.series.push(BarSeries {
                label: String::new(),
                values: Vec::new(),
            });
        }
        let first = &mut self.series[0].values;
        first.resize(index, f64::NAN);
        first.push(value);
        self
    }

    /// Appends categories for grouped bars (see [`BarChart::series`]).
    pub fn categories<S: Into<String>>(
        mut self,
        categories: impl IntoIterator<Item = S>,
    ) -> BarChart {
        self.categories
            .extend(categories.into_iter().map(Into::into));
        self
    }

    /// Adds a series with one value per category, in category order (extra values are
    /// ignored, missing ones draw no bar).
    pub fn series(mut self, label: impl Into<String>, values: &[f64]) -> BarChart {
        self.series.push(BarSeries {
            label: label.into(),
            values: values.to_vec(),
        });
        self
    }

    /// Renders the document.
    pub fn to_svg(&self) -> String {
        let n = self.categories.len();
        let value = |s: &BarSeries, c: usize| s.values.get(c).copied().filter(|v| usable(*v));
        let values = self
            .series
            .iter()
            .flat_map(|s| (0..n).filter_map(move |c| value(s, c)));
        let Some((lo, hi)) = extent(values) else {
            return no_data(&self.title);
        };
        let (mut lo, mut hi) = (lo.min(0.0), hi.max(0.0));
        // Headroom, so the value written over the tallest bar stays inside the plot.
        let span = hi - lo;
        if hi > 0.0 {
            hi += span * 0.08;
        }
        if lo < 0.0 {
            lo -= span * 0.08;
        }
        let whole = self
            .series
            .iter()
            .all(|s| (0..n).filter_map(|c| value(s, c)).all(|v| v.fract() == 0.0));
        let y_axis = Axis::covering_with_min_step(lo, hi, 6, if whole { 1.0 } else { 0.0 });
        let (width, height) = (f64::from(WIDTH), f64::from(HEIGHT));
        let legend = Legend::new(
            self.series
                .iter()
                .enumerate()
                .map(|(index, s)| (s.label.clone(), Swatch::Block { index }))
                .collect(),
            width,
        );
        let area = Area::new(width, height, MARGIN_LEFT, legend.height());
        let mut doc = Doc::new(width, height, &self.title);
        legend.draw(&mut doc);
        doc.y_ticks(&area, &y_axis);

        let slot = area.width() / n as f64;
        let group = self.series.len().max(1);
        let bar_width = slot * 0.8 / group as f64;
        let zero = y_axis.y(&area, 0.0);
        for (index, series) in self.series.iter().enumerate() {
            for c in 0..n {
                let Some(v) = value(series, c) else { continue };
                let x = area.left + c as f64 * slot + slot * 0.1 + index as f64 * bar_width;
                let y = y_axis.y(&area, v);
                let gap = if group > 1 { bar_width * 0.08 } else { 0.0 };
                let w = bar_width - gap;
                doc.rect(
                    x + gap / 2.0,
                    y.min(zero),
                    w,
                    (y - zero).abs(),
                    colour(index),
                );
                let label = significant(v, 4);
                if text_width(&label, SMALL_FONT) <= bar_width + slot * 0.1 {
                    let label_y = if v >= 0.0 {
                        y - 4.0
                    } else {
                        y + SMALL_FONT + 2.0
                    };
                    doc.text(
                        x + bar_width / 2.0,
                        label_y,
                        "middle",
                        &format!(r#" font-size="{}" fill="{INK}""#, px(SMALL_FONT)),
                        &label,
                    );
                }
            }
        }
        if lo < 0.0 {
            doc.hline(area.left, area.right, zero, INK);
        }
        // Category labels; only every `stride`-th one when they would overlap.
        let labels: Vec<String> = self.categories.iter().map(|c| truncate(c, 24)).collect();
        let widest = labels
            .iter()
            .map(|l| text_width(l, FONT))
            .fold(0.0, f64::max);
        let stride = ((widest + 8.0) / slot).ceil().max(1.0) as usize;
        for (c, label) in labels.iter().enumerate().step_by(stride) {
            let x = area.left + (c as f64 + 0.5) * slot;
            doc.text(x, area.bottom + 16.0, "middle", &fill_attr(INK), label);
        }
        doc.frame(&area);
        doc.axis_labels(&area, &self.x_label, &self.y_label);
        doc.finish()
    }
}

/// Samples counted into buckets `[a, a + width)` at multiples of the bucket width, rendered as
/// a [`BarChart`] with one category per bucket (`"0–100"`, `"100–200"`, ...) from the lowest to
/// the highest non-empty bucket, and one series per call of [`Histogram::series`].
///
/// A bucket width that is not positive and finite renders "no data". Samples that would need
/// more than 200 buckets are bucketed at the smallest multiple of the width that fits in 200.
#[derive(Clone, Debug, PartialEq)]
#[must_use = "a plot builder does nothing until `to_svg`"]
pub struct Histogram {
    title: String,
    x_label: String,
    /// Defaults to "count".
    y_label: String,
    bucket_width: f64,
    series: Vec<(String, Vec<f64>)>,
}

impl Histogram {
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        bucket_width: f64,
    ) -> Histogram {
        Histogram {
            title: title.into(),
            x_label: x_label.into(),
            y_label: "count".to_string(),
            bucket_width,
            series: Vec::new(),
        }
    }

    /// Replaces the y axis label (default "count").
    pub fn y_label(mut self, label: impl Into<String>) -> Histogram {
        self.y_label = label.into();
        self
    }

    /// Adds samples as one series (bars side by side with the other series' in each bucket).
    pub fn series(mut self, label: impl Into<String>, samples: &[f64]) -> Histogram {
        self.series.push((label.into(), samples.to_vec()));
        self
    }

    /// The bar chart of the bucket counts.
    pub fn to_bar_chart(&self) -> BarChart {
        let mut chart = BarChart::new(&self.title, &self.x_label, &self.y_label);
        let mut width = self.bucket_width;
        let all = || {
            self.series
                .iter()
                .flat_map(|(_, s)| s.iter().copied())
                .filter(|v| usable(*v))
        };
        let Some((lo, hi)) = extent(all()) else {
            return chart;
        };
        if !(usable(width) && width > 0.0) {
            return chart;
        }
        let bucket = |v: f64, width: f64| floor_tol(v / width);
        let mut count = bucket(hi, width) - bucket(lo, width) + 1.0;
        if count > MAX_BUCKETS as f64 {
            width *= (count / MAX_BUCKETS as f64).ceil();
            count = bucket(hi, width) - bucket(lo, width) + 1.0;
        }
        if !(count.is_finite() && count >= 1.0 && count <= MAX_BUCKETS as f64) {
            // Only reachable with a width so small that the bucket arithmetic breaks down.
            return chart;
        }
        let first = bucket(lo, width);
        let count = count as usize;
        chart = chart.categories((0..count).map(|i| {
            let start = (first + i as f64) * width;
            format!("{}–{}", fixed(start, 6), fixed(start + width, 6))
        }));
        for (label, samples) in &self.series {
            let mut counts = vec![0.0; count];
            for v in samples.iter().copied().filter(|v| usable(*v)) {
                let index = (bucket(v, width) - first).clamp(0.0, (count - 1) as f64) as usize;
                counts[index] += 1.0;
            }
            chart = chart.series(label.clone(), &counts);
        }
        chart
    }

    /// Renders the document.
    pub fn to_svg(&self) -> String {
        self.to_bar_chart().to_svg()
    }
}

// ---------------------------------------------------------------------------------------------
// Timeline
// ---------------------------------------------------------------------------------------------

/// One row per client with its intervals (stalls, media gaps) as red blocks on a time axis,
/// and dashed vertical markers at event times labelled `t=<time> s <label>`.
///
/// Intervals are clipped to the x range; a reversed interval is swapped; a very short one is
/// still drawn 1.5 px wide so it stays visible. A row with no intervals is drawn empty (a client
/// without stalls). An x range that is not increasing and finite is replaced by the extent of
/// the intervals and markers.
#[derive(Clone, Debug, PartialEq)]
#[must_use = "a plot builder does nothing until `to_svg`"]
pub struct Timeline {
    title: String,
    x_label: String,
    x_range: (f64, f64),
    /// `(label, intervals)` from top to bottom.
    rows: Vec<(String, Vec<(f64, f64)>)>,
    /// `(time, label)` of events.
    markers: Vec<(f64, String)>,
}

impl Timeline {
    /// A timeline over `x_range` (e.g. seconds since the scenario start).
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        x_range: (f64, f64),
    ) -> Timeline {
        Timeline {
            title: title.into(),
            x_label: x_label.into(),
            x_range,
            rows: Vec::new(),
            markers: Vec::new(),
        }
    }

    /// Appends a row with its `(start, end)` intervals.
    pub fn row(mut self, label: impl Into<String>, intervals: &[(f64, f64)]) -> Timeline {
        self.rows.push((label.into(), intervals.to_vec()));
        self
    }

    /// Adds an event marker at `time`, labelled `t=<time> s <label>`.
    pub fn marker(mut self, time: f64, label: impl Into<String>) -> Timeline {
        self.markers.push((time, label.into()));
        self
    }

    /// Renders the document.
    pub fn to_svg(&self) -> String {
        if self.rows.is_empty() {
            return no_data(&self.title);
        }
        let (lo, hi) = self.x_range;
        let x_axis = if usable(lo) && usable(hi) && lo < hi {
            Axis::fixed(lo, hi, 8)
        } else {
            let ends = self
                .rows
                .iter()
                .flat_map(|(_, r)| r.iter().flat_map(|&(a, b)| [a, b]));
            let times = ends
                .chain(self.markers.iter().map(|(t, _)| *t))
                .filter(|v| usable(*v));
            let (lo, hi) = extent(times).unwrap_or((0.0, 1.0));
            Axis::covering(lo, hi, 8)
        };
        let (width, base_height) = (f64::from(WIDTH), f64::from(HEIGHT));

        let labels: Vec<String> = self.rows.iter().map(|(l, _)| truncate(l, 24)).collect();
        let widest = labels
            .iter()
            .map(|l| text_width(l, FONT))
            .fold(0.0, f64::max);
        let left = (widest + 16.0).clamp(50.0, 200.0);

        // Marker labels go above the plot, on up to three levels so neighbours do not overlap.
        let mut markers: Vec<(f64, String)> = self
            .markers
            .iter()
            .filter(|(t, _)| usable(*t) && *t >= x_axis.lo && *t <= x_axis.hi)
            .map(|(t, l)| {
                let text = if l.is_empty() {
                    format!("t={} s", fixed(*t, 3))
                } else {
                    format!("t={} s {}", fixed(*t, 3), truncate(l, 40))
                };
                (*t, text)
            })
            .collect();
        markers.sort_by(|a, b| a.0.total_cmp(&b.0));
        let probe = Area::new(width, base_height, left, 0.0);
        let mut level_ends: Vec<f64> = Vec::new();
        let mut placed = Vec::new();
        for (t, text) in markers {
            let x = x_axis.x(&probe, t);
            let w = text_width(&text, SMALL_FONT);
            let (anchor, start) = if x + w > width - 4.0 {
                ("end", x - w)
            } else {
                ("start", x)
            };
            let level = match level_ends.iter().position(|end| *end + 6.0 < start) {
                Some(level) => level,
                None if level_ends.len() < 3 => {
                    level_ends.push(f64::NEG_INFINITY);
                    level_ends.len() - 1
                }
                None => (0..level_ends.len())
                    .min_by(|a, b| level_ends[*a].total_cmp(&level_ends[*b]))
                    .unwrap_or(0),
            };
            level_ends[level] = start + w;
            placed.push((t, text, anchor, level));
        }
        let marker_height = level_ends.len() as f64 * 14.0;

        let n = self.rows.len();
        let min_row = 14.0;
        let natural = base_height - MARGIN_TOP - marker_height - MARGIN_BOTTOM;
        let height = if natural < n as f64 * min_row {
            MARGIN_TOP + marker_height + n as f64 * min_row + MARGIN_BOTTOM
        } else {
            base_height
        };
        let area = Area::new(width, height, left, marker_height);
        let row_height = area.height() / n as f64;
        let block = (row_height * 0.6).min(24.0);

        let mut doc = Doc::new(width, height, &self.title);
        for (r, label) in labels.iter().enumerate() {
            let top = area.top + r as f64 * row_height;
            if r % 2 == 1 {
                doc.rect(area.left, top, area.width(), row_height, "#f4f4f4");
            }
            doc.text(
                area.left - 8.0,
                top + row_height / 2.0 + 4.0,
                "end",
                &fill_attr(INK),
                label,
            );
        }
        doc.x_ticks(&area, &x_axis);
        for (r, (_, intervals)) in self.rows.iter().enumerate() {
            let middle = area.top + (r as f64 + 0.5) * row_height;
            for &(a, b) in intervals {
                if !(usable(a) && usable(b)) {
                    continue;
                }
                let (a, b) = if a <= b { (a, b) } else { (b, a) };
                if b < x_axis.lo || a > x_axis.hi {
                    continue;
                }
                let x1 = x_axis.x(&area, a.max(x_axis.lo));
                let x2 = x_axis.x(&area, b.min(x_axis.hi));
                let w = (x2 - x1).max(1.5);
                let x1 = x1.min(area.right - w);
                doc.rect(x1, middle - block / 2.0, w, block, INTERVAL_COLOUR);
            }
        }
        for (t, text, anchor, level) in &placed {
            let x = x_axis.x(&area, *t);
            let y = MARGIN_TOP + 10.0 + *level as f64 * 14.0;
            doc.vline(x, y + 3.0, area.bottom, INK, r#" stroke-dasharray="5 4""#);
            doc.text(
                x,
                y,
                anchor,
                &format!(r#" font-size="{}" fill="{INK}""#, px(SMALL_FONT)),
                text,
            );
        }
        doc.frame(&area);
        doc.axis_labels(&area, &self.x_label, "");
        doc.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that `svg` is one well-nested `<svg>` element whose `&`s all start entities,
    /// and returns the names of its elements in document order.
    fn check_document(svg: &str) -> Vec<String> {
        assert!(
            svg.starts_with("<svg "),
            "does not start with <svg: {svg:.60}"
        );
        assert!(svg.ends_with("</svg>\n"));
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            check_entities(text);
            let close = rest[open..].find('>').expect("unterminated tag") + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
            check_entities(tag);
            if let Some(name) = tag.strip_prefix('/') {
                let top = stack.pop().expect("close without open");
                assert_eq!(top, name, "mismatched close tag");
                assert!(
                    !stack.is_empty() || rest[close + 1..].trim().is_empty(),
                    "content after root"
                );
            } else {
                let name: String = tag
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '/')
                    .collect();
                if stack.is_empty() {
                    assert_eq!(name, "svg");
                    assert!(names.is_empty(), "second root element");
                }
                names.push(name.clone());
                if !tag.ends_with('/') {
                    stack.push(name);
                }
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed elements: {stack:?}");
        assert!(
            !svg.contains("NaN") && !svg.contains("inf"),
            "non-finite number written"
        );
        names
    }

    fn check_entities(text: &str) {
        for (i, _) in text.match_indices('&') {
            let after = &text[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| after.starts_with(e)),
                "bare & in {text}"
            );
        }
    }

    /// The `(x, y)` points of a `M x,y L x,y ...` path.
    fn path_points(d: &str) -> Vec<(f64, f64)> {
        d.split_whitespace()
            .map(|token| {
                let (x, y) = token
                    .trim_start_matches(['M', 'L'])
                    .split_once(',')
                    .expect("x,y");
                (x.parse().expect("x"), y.parse().expect("y"))
            })
            .collect()
    }

    /// The value of attribute `name` of every element starting with `prefix`.
    fn attributes<'a>(svg: &'a str, prefix: &str, name: &str) -> Vec<&'a str> {
        svg.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| {
                let start = l.find(&format!(" {name}=\""))? + name.len() + 3;
                let end = l[start..].find('"')? + start;
                Some(&l[start..end])
            })
            .collect()
    }

    fn samples() -> Vec<(&'static str, String)> {
        vec![
            (
                "cdf",
                Cdf::new("Startup delay", "ms")
                    .series("4-node", &[310.0, 280.0, 450.0, 300.0, 290.0, 800.0])
                    .series("50-node", &[520.0, 610.0, 480.0, 700.0, 1200.0])
                    .series("50-node, 5 % loss", &[650.0, 720.0, 900.0, 1500.0, 2100.0])
                    .to_svg(),
            ),
            (
                "cdf-log",
                Cdf::new("Startup delay (log x)", "ms")
                    .series("4-node", &[31.0, 28.0, 45.0, 300.0, 290.0, 800.0])
                    .series("50-node", &[52.0, 610.0, 480.0, 700.0, 1200.0])
                    .log_x(true)
                    .to_svg(),
            ),
            (
                "line",
                LinePlot::new("Continuity vs loss", "loss %", "continuity index")
                    .y_range(0.9, 1.0)
                    .series(Series::new("min over clients").points(&[
                        (0.0, 1.0),
                        (1.0, 0.9995),
                        (2.0, 0.998),
                        (5.0, 0.991),
                        (10.0, 0.95),
                    ]))
                    .series(Series::new("mean (min..max)").ranged_points(&[
                        (0.0, 1.0, 1.0, 1.0),
                        (1.0, 0.9998, 0.9995, 1.0),
                        (2.0, 0.999, 0.998, 1.0),
                        (5.0, 0.996, 0.991, 1.0),
                        (10.0, 0.97, 0.95, 0.99),
                    ]))
                    .to_svg(),
            ),
            (
                "bars",
                BarChart::new("Stretch per client", "client", "stretch")
                    .categories(["c1", "c2", "c3", "c4"])
                    .series("tree", &[1.2, 1.45, 1.0, 2.1])
                    .series("best path", &[1.0, 1.1, 1.0, 1.3])
                    .to_svg(),
            ),
            (
                "histogram",
                Histogram::new("Repair time", "ms", 100.0)
                    .series(
                        "kill n3",
                        &[40.0, 120.0, 130.0, 180.0, 210.0, 250.0, 260.0, 270.0, 420.0],
                    )
                    .to_svg(),
            ),
            (
                "timeline",
                Timeline::new("Stalls around faults", "s since start", (0.0, 60.0))
                    .row("c1", &[(10.2, 10.5), (30.1, 31.4)])
                    .row("c2", &[])
                    .row("c3 <pop n7>", &[(10.3, 10.35), (55.0, 70.0)])
                    .marker(10.0, "kill n3")
                    .marker(11.0, "n3 restarts")
                    .marker(30.0, "partition n1|n2")
                    .to_svg(),
            ),
        ]
    }

    #[test]
    fn nice_step_is_one_two_or_five_times_a_power_of_ten() {
        for span in [
            1e-6, 0.003, 0.1, 0.7, 1.0, 2.0, 3.7, 9.99, 10.0, 12.0, 77.0, 1234.0, 9e9,
        ] {
            for target in [1, 4, 5, 8, 10] {
                let step = nice_step(span, target);
                let mantissa = step / 10f64.powf(step.log10().floor());
                assert!(
                    [1.0, 2.0, 5.0, 10.0]
                        .iter()
                        .any(|m| (mantissa - m).abs() < 1e-6),
                    "span {span} target {target}: step {step}"
                );
                assert!(span / step <= target as f64 + 1e-9, "too many intervals");
                assert!(
                    span / step > target as f64 / 5.0 - 1e-9,
                    "too few intervals"
                );
            }
        }
    }

    #[test]
    fn nice_ticks_cover_the_range_in_equal_steps() {
        for (lo, hi) in [
            (0.0, 1.0),
            (1.0, 3.0),
            (-7.5, 42.0),
            (0.9, 1.0),
            (280.0, 2100.0),
            (1e-3, 2e-3),
        ] {
            let ticks = nice_ticks(lo, hi, 6);
            assert!(
                ticks.len() >= 2 && ticks.len() <= 9,
                "{lo}..{hi}: {ticks:?}"
            );
            assert!(
                ticks[0] <= lo + 1e-12 && *ticks.last().unwrap() >= hi - 1e-12,
                "{ticks:?}"
            );
            let step = ticks[1] - ticks[0];
            assert!(
                ticks
                    .windows(2)
                    .all(|w| ((w[1] - w[0]) - step).abs() < step * 1e-6)
            );
            assert!(
                ticks[0] > lo - step - 1e-12,
                "first tick more than a step below: {ticks:?}"
            );
        }
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
    }

    #[test]
    fn nice_ticks_of_degenerate_or_non_finite_ranges_still_increase() {
        for (lo, hi) in [
            (5.0, 5.0),
            (0.0, 0.0),
            (f64::NAN, 1.0),
            (1.0, f64::INFINITY),
            (3.0, -3.0),
        ] {
            let ticks = nice_ticks(lo, hi, 5);
            assert!(ticks.len() >= 2, "{lo}..{hi}: {ticks:?}");
            assert!(ticks.windows(2).all(|w| w[0] < w[1]), "{ticks:?}");
        }
    }

    #[test]
    fn a_fixed_range_keeps_its_ends_and_ticks_inside() {
        let axis = Axis::fixed(0.9, 1.0, 6);
        assert_eq!((axis.lo, axis.hi), (0.9, 1.0));
        let labels: Vec<&str> = axis.ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["0.9", "0.92", "0.94", "0.96", "0.98", "1"]);
    }

    #[test]
    fn cdf_of_one_two_three_reaches_one_at_three() {
        let steps = cdf_steps(&[3.0, 1.0, 2.0]);
        assert_eq!(steps, vec![(1.0, 1.0 / 3.0), (2.0, 2.0 / 3.0), (3.0, 1.0)]);

        let svg = Cdf::new("t", "x").series("s", &[1.0, 2.0, 3.0]).to_svg();
        let d = attributes(&svg, "<path class=\"cdf\"", "d");
        assert_eq!(d.len(), 1);
        let points = path_points(d[0]);
        let area = Area::new(f64::from(WIDTH), f64::from(HEIGHT), MARGIN_LEFT, 0.0);
        let x_axis = Axis::covering(1.0, 3.0, 8);
        let (x3, y1) = (x_axis.x(&area, 3.0), area.top);
        let x3: f64 = px(x3).parse().unwrap();
        let first_at_one = points.iter().find(|(_, y)| (*y - y1).abs() < 0.01);
        assert_eq!(first_at_one.map(|p| p.0), Some(x3), "points: {points:?}");
        assert!(
            points
                .iter()
                .all(|(x, y)| *x <= x3 || (*y - y1).abs() < 0.01)
        );
        assert_eq!(
            points.first().map(|p| p.1),
            Some(area.bottom),
            "starts at fraction 0"
        );
    }

    #[test]
    fn cdf_counts_ties_once_with_their_full_weight() {
        assert_eq!(
            cdf_steps(&[2.0, 2.0, 1.0, 2.0]),
            vec![(1.0, 0.25), (2.0, 1.0)]
        );
    }

    #[test]
    fn every_plot_kind_renders_a_balanced_document_with_title_and_labels() {
        let expected: [(&str, &[&str]); 6] = [
            (
                "cdf",
                &[
                    "Startup delay",
                    "4-node",
                    "50-node",
                    "fraction of clients",
                    "ms",
                ],
            ),
            ("cdf-log", &["4-node", ">100<", ">1000<"]),
            (
                "line",
                &[
                    "Continuity vs loss",
                    "min over clients",
                    "mean (min..max)",
                    "loss %",
                ],
            ),
            (
                "bars",
                &["Stretch per client", "tree", "best path", "c4", ">2.1<"],
            ),
            (
                "histogram",
                &["Repair time", "0–100", "400–500", ">4<", "count"],
            ),
            (
                "timeline",
                &[
                    "Stalls around faults",
                    "c1",
                    "c3 &lt;pop n7&gt;",
                    "t=10 s kill n3",
                ],
            ),
        ];
        for ((kind, svg), (name, texts)) in samples().iter().zip(expected) {
            assert_eq!(*kind, name);
            let elements = check_document(svg);
            assert!(elements.len() > 10, "{kind}: only {elements:?}");
            assert!(svg.contains("font-family=\"sans-serif\""));
            assert!(
                svg.contains("fill=\"#ffffff\""),
                "{kind}: no white background"
            );
            for text in texts {
                assert!(svg.contains(text), "{kind}: missing {text}");
            }
        }
    }

    #[test]
    fn a_legend_appears_only_with_more_than_one_series() {
        let one = LinePlot::new("t", "x", "y")
            .series(Series::new("alone").points(&[(0.0, 1.0)]))
            .to_svg();
        assert!(!one.contains("alone"));
        let two = LinePlot::new("t", "x", "y")
            .series(Series::new("first").points(&[(0.0, 1.0)]))
            .series(Series::new("second").points(&[(1.0, 2.0)]))
            .to_svg();
        assert!(two.contains(">first<") && two.contains(">second<"));
    }

    #[test]
    fn labels_are_xml_escaped_everywhere() {
        let nasty = "a<b & \"c\">'d'";
        let escaped = "a&lt;b &amp; &quot;c&quot;&gt;&apos;d&apos;";
        let svgs = [
            Cdf::new(nasty, nasty)
                .series(nasty, &[1.0])
                .series("x", &[2.0])
                .to_svg(),
            LinePlot::new(nasty, nasty, nasty)
                .series(Series::new(nasty).points(&[(1.0, 1.0)]))
                .series(Series::new("x").points(&[(2.0, 2.0)]))
                .to_svg(),
            BarChart::new(nasty, nasty, nasty)
                .categories([nasty])
                .series(nasty, &[1.0])
                .series("x", &[2.0])
                .to_svg(),
            Timeline::new(nasty, nasty, (0.0, 1.0))
                .row(nasty, &[])
                .marker(0.5, nasty)
                .to_svg(),
        ];
        for svg in &svgs {
            check_document(svg);
            assert!(!svg.contains("a<b"), "raw label in {svg}");
            let count = svg.matches(escaped).count();
            assert!(count >= 4, "only {count} escaped labels in {svg}");
        }
    }

    #[test]
    fn empty_input_renders_no_data() {
        let svgs = [
            Cdf::new("empty cdf", "ms").to_svg(),
            Cdf::new("empty series", "ms").series("a", &[]).to_svg(),
            Cdf::new("only non-positive on log x", "ms")
                .series("a", &[0.0, -1.0])
                .log_x(true)
                .to_svg(),
            LinePlot::new("empty line", "x", "y")
                .series(Series::new("a"))
                .to_svg(),
            BarChart::new("empty bars", "x", "y").to_svg(),
            BarChart::new("no values", "x", "y")
                .categories(["a", "b"])
                .to_svg(),
            Histogram::new("empty histogram", "ms", 100.0)
                .series("a", &[])
                .to_svg(),
            Histogram::new("zero bucket width", "ms", 0.0)
                .series("a", &[1.0])
                .to_svg(),
            Timeline::new("empty timeline", "s", (0.0, 60.0)).to_svg(),
        ];
        for svg in &svgs {
            check_document(svg);
            assert!(svg.contains(">no data<"), "{svg}");
            assert!(
                svg.contains("empty")
                    || svg.contains("no values")
                    || svg.contains("zero")
                    || svg.contains("only")
            );
        }
        let some = Cdf::new("data", "ms").series("a", &[1.0]).to_svg();
        assert!(!some.contains("no data"));
    }

    #[test]
    fn nan_and_infinite_values_are_skipped() {
        let (nan, inf) = (f64::NAN, f64::INFINITY);
        assert_eq!(
            Cdf::new("t", "x")
                .series("a", &[1.0, nan, 2.0, inf, -inf])
                .to_svg(),
            Cdf::new("t", "x").series("a", &[1.0, 2.0]).to_svg()
        );
        assert_eq!(
            LinePlot::new("t", "x", "y")
                .series(Series::new("a").points(&[(0.0, 1.0), (nan, 2.0), (1.0, inf), (2.0, 3.0)]))
                .to_svg(),
            LinePlot::new("t", "x", "y")
                .series(Series::new("a").points(&[(0.0, 1.0), (2.0, 3.0)]))
                .to_svg()
        );
        let bars = BarChart::new("t", "x", "y")
            .bar("a", 1.0)
            .bar("b", nan)
            .bar("c", inf)
            .to_svg();
        check_document(&bars);
        assert_eq!(
            bars.matches("<rect x=").count() - 1,
            1,
            "one data bar besides the frame: {bars}"
        );
        assert_eq!(
            Histogram::new("t", "x", 1.0)
                .series("a", &[0.5, nan, 1.5, inf])
                .to_svg(),
            Histogram::new("t", "x", 1.0)
                .series("a", &[0.5, 1.5])
                .to_svg()
        );
        assert_eq!(
            Timeline::new("t", "x", (0.0, 10.0))
                .row("c", &[(1.0, 2.0), (nan, 3.0)])
                .marker(inf, "x")
                .to_svg(),
            Timeline::new("t", "x", (0.0, 10.0))
                .row("c", &[(1.0, 2.0)])
                .to_svg()
        );
    }

    #[test]
    fn rendering_twice_gives_byte_identical_output() {
        for ((kind, first), (_, second)) in samples().iter().zip(samples()) {
            assert_eq!(*first, second, "{kind} differs between calls");
        }
    }

    #[test]
    fn coordinates_have_at_most_two_decimals() {
        for (kind, svg) in samples() {
            for number in svg.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
                if let Some((_, decimals)) = number.split_once('.') {
                    assert!(
                        decimals.len() <= 2 || svg.contains(&format!(">{number}")),
                        "{kind}: {number}"
                    );
                }
            }
        }
    }

    #[test]
    fn histogram_counts_samples_into_half_open_buckets() {
        let chart = Histogram::new("t", "ms", 100.0)
            .series("a", &[0.0, 50.0, 99.9, 100.0, 250.0])
            .to_bar_chart();
        assert_eq!(chart.categories, ["0–100", "100–200", "200–300"]);
        assert_eq!(chart.series[0].values, [3.0, 1.0, 1.0]);

        let tenths = Histogram::new("t", "s", 0.1)
            .series("a", &[0.3, 0.35])
            .to_bar_chart();
        assert_eq!(tenths.categories, ["0.3–0.4"]);
        assert_eq!(tenths.series[0].values, [2.0]);
    }

    #[test]
    fn histogram_with_too_many_buckets_widens_them() {
        let chart = Histogram::new("t", "ms", 1.0)
            .series("a", &[0.0, 999.0])
            .to_bar_chart();
        assert_eq!(chart.categories.len(), 200);
        assert_eq!(chart.categories[0], "0–5");
        assert_eq!(chart.series[0].values.iter().sum::<f64>(), 2.0);
    }

    #[test]
    fn counts_get_whole_number_ticks() {
        let svg = Histogram::new("t", "ms", 10.0)
            .series("a", &[1.0, 15.0])
            .to_svg();
        assert!(!svg.contains(">0.5<") && !svg.contains(">0.2<"), "{svg}");
        assert!(svg.contains(">0<") && svg.contains(">1<"));
    }

    #[test]
    fn timeline_draws_intervals_and_keeps_empty_rows() {
        let svg = Timeline::new("t", "s", (0.0, 10.0))
            .row("quiet", &[])
            .row("stalls", &[(2.0, 3.0), (20.0, 30.0), (9.5, 12.0)])
            .to_svg();
        check_document(&svg);
        assert!(svg.contains(">quiet<") && svg.contains(">stalls<"));
        let blocks = svg.matches(&format!("fill=\"{INTERVAL_COLOUR}\"")).count();
        assert_eq!(blocks, 2, "one interval is outside the range: {svg}");
    }

    #[test]
    fn escape_replaces_the_five_xml_specials() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;"
        );
        assert_eq!(escape("plain – text"), "plain – text");
    }

    #[test]
    fn number_formatting_is_fixed_and_trimmed() {
        assert_eq!(px(1.0), "1");
        assert_eq!(px(1.005_1), "1.01");
        assert_eq!(px(-0.001), "0");
        assert_eq!(fixed(0.1 + 0.2, 6), "0.3");
        assert_eq!(significant(0.99951, 4), "0.9995");
        assert_eq!(significant(1234.5, 4), "1234");
        assert_eq!(significant(3.0, 4), "3");
    }

    /// Writes one sample per plot kind to /tmp/svg-samples/ for viewing by hand:
    /// `cargo test -p meshcast-lab --lib svg::tests::write_samples -- --ignored`.
    #[test]
    #[ignore = "writes files for a human to look at"]
    fn write_samples() {
        let dir = std::path::Path::new("/tmp/svg-samples");
        std::fs::create_dir_all(dir).unwrap();
        for (kind, svg) in samples() {
            std::fs::write(dir.join(format!("{kind}.svg")), svg).unwrap();
        }
        let empty = Cdf::new("Nothing measured", "ms").to_svg();
        std::fs::write(dir.join("empty.svg"), empty).unwrap();
    }
}
