//! A small SVG bar chart: grouped bars, optional log scale, legend. Enough for the
//! benchmark's figures without a plotting library and its font dependencies.

use std::fmt::Write;

pub struct Series {
    pub name: String,
    /// One value per category; `None` draws no bar (not applicable).
    pub values: Vec<Option<f64>>,
}

const COLORS: [&str; 8] = ["#b0b0b0", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 110.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Grouped vertical bars: one group per category, one bar per series.
pub fn grouped_bars(title: &str, y_label: &str, categories: &[String], series: &[Series], log: bool) -> String {
    let values = series.iter().flat_map(|s| s.values.iter().flatten().copied()).filter(|v| *v > 0.0);
    let max = values.clone().fold(f64::MIN, f64::max).max(1e-9);
    let min = values.fold(f64::MAX, f64::min).min(max);
    // Axis range: decades for log scale, 0..nice max for linear.
    let (lo, hi) = if log {
        (10f64.powf(min.log10().floor()), 10f64.powf(max.log10().ceil().max(min.log10().floor() + 1.0)))
    } else {
        let step = 10f64.powf(max.log10().floor());
        (0.0, (max / step).ceil() * step)
    };
    let plot_h = HEIGHT - TOP - BOTTOM;
    let plot_w = WIDTH - LEFT - RIGHT;
    let y = |v: f64| -> f64 {
        let f = if log { (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10()) } else { (v - lo) / (hi - lo) };
        TOP + plot_h * (1.0 - f.clamp(0.0, 1.0))
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ =
        writeln!(out, r#"<text x="{}" y="24" font-size="16" text-anchor="middle">{}</text>"#, WIDTH / 2.0, esc(title));
    // Grid lines and labels.
    let ticks: Vec<f64> = if log {
        let mut t = Vec::new();
        let mut v = lo;
        while v <= hi * 1.0001 {
            t.push(v);
            v *= 10.0;
        }
        t
    } else {
        (0..=5).map(|i| lo + (hi - lo) * i as f64 / 5.0).collect()
    };
    for t in ticks {
        let ty = y(t);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{ty:.1}" y2="{ty:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            ty + 4.0,
            tick_label(t)
        );
    }
    let _ = writeln!(
        out,
        r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        esc(y_label)
    );
    let group_w = plot_w / categories.len().max(1) as f64;
    let bar_w = (group_w * 0.8) / series.len().max(1) as f64;
    for (ci, cat) in categories.iter().enumerate() {
        let gx = LEFT + group_w * ci as f64 + group_w * 0.1;
        for (si, s) in series.iter().enumerate() {
            let Some(v) = s.values.get(ci).copied().flatten() else { continue };
            let (top, bx) = (y(v), gx + bar_w * si as f64);
            let _ = writeln!(
                out,
                r#"<rect x="{bx:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                bar_w * 0.92,
                (TOP + plot_h - top).max(0.5),
                COLORS[si % COLORS.len()],
                esc(&s.name),
                tick_label(v)
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle">{}</text>"#,
                bx + bar_w * 0.46,
                top - 3.0,
                tick_label(v)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            gx + group_w * 0.4,
            TOP + plot_h + 16.0,
            esc(cat)
        );
    }
    let _ = writeln!(
        out,
        r#"<line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="black"/>"#,
        WIDTH - RIGHT,
        TOP + plot_h,
        TOP + plot_h
    );
    // Legend, below the plot.
    for (si, s) in series.iter().enumerate() {
        let (col, row) = (si % 3, si / 3);
        let lx = LEFT + col as f64 * 250.0;
        let ly = HEIGHT - BOTTOM + 40.0 + row as f64 * 20.0;
        let _ = writeln!(
            out,
            r#"<rect x="{lx}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{}" y="{:.1}">{}</text>"#,
            ly - 10.0,
            COLORS[si % COLORS.len()],
            lx + 18.0,
            ly,
            esc(&s.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn tick_label(v: f64) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}
