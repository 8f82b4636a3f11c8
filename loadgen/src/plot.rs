//! `--plot FILE.svg`: the latency percentile spectrum, drawn the way HdrHistogram's plotter
//! draws it. The x-axis is `1 / (1 - percentile)` on a log scale, so 90 %, 99 %, 99.9 %...
//! are evenly spaced and the tail, where brokers differ, gets most of the width; the y-axis is
//! latency in microseconds. Several series (A and B in `compare`) share one chart.

use std::path::Path;

use plotters::prelude::*;

use crate::error::LoadgenError;
use crate::latency::Latency;

const SIZE_PX: (u32, u32) = (960, 540);
/// The x-axis ends at 99.9999 %: beyond that a run of a few million samples has nothing.
const X_MAX: f64 = 1e6;
const COLOURS: [RGBColor; 4] = [
    RGBColor(0xD6, 0x27, 0x28),
    RGBColor(0x1F, 0x77, 0xB4),
    RGBColor(0x2C, 0xA0, 0x2C),
    RGBColor(0x94, 0x67, 0xBD),
];

/// Draws each `(label, latency)` as one line.
pub fn write_svg(
    path: &Path,
    title: &str,
    series: &[(String, &Latency)],
) -> Result<(), LoadgenError> {
    draw(path, title, series).map_err(|e| {
        LoadgenError::io(
            format!("plotting {}", path.display()),
            std::io::Error::other(e.to_string()),
        )
    })
}

/// x for a percentile in [0, 100).
fn x_of(percentile: f64) -> f64 {
    (1.0 / (1.0 - percentile / 100.0)).clamp(1.0, X_MAX)
}

/// The label under x: `99.9%`.
fn percentile_label(x: &f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    let digits = (x.log10().round() as usize).saturating_sub(2);
    format!("{p:.digits$}%")
}

fn draw(
    path: &Path,
    title: &str,
    series: &[(String, &Latency)],
) -> Result<(), Box<dyn std::error::Error>> {
    let spectra: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|(_, l)| {
            l.spectrum()
                .into_iter()
                .map(|(p, us)| (x_of(p), us as f64))
                .collect()
        })
        .collect();
    let y_max = spectra.iter().flatten().map(|p| p.1).fold(1.0, f64::max) * 1.05;
    let root = SVGBackend::new(path, SIZE_PX).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .margin_right(48)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d((1.0f64..X_MAX).log_scale(), 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_label_formatter(&percentile_label)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (i, ((label, _), points)) in series.iter().zip(&spectra).enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))?
            .label(label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maps_percentiles_to_decades() {
        assert_eq!(x_of(0.0), 1.0);
        assert!((x_of(99.0) - 100.0).abs() < 1e-6);
        assert_eq!(x_of(99.999_999_9), X_MAX);
        assert_eq!(percentile_label(&10.0), "90%");
        assert_eq!(percentile_label(&1000.0), "99.9%");
    }

    #[test]
    fn writes_an_svg_with_every_series() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        for us in 1..=5_000u64 {
            a.record_us(100 + us % 700);
            b.record_us(200 + (us * us) % 3_000);
        }
        let path = std::env::temp_dir().join(format!("lg-plot-{}.svg", std::process::id()));
        write_svg(&path, "test", &[("A".into(), &a), ("B".into(), &b)]).expect("drawn");
        let svg = std::fs::read_to_string(&path).expect("readable");
        let _ = std::fs::remove_file(&path);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("99.9%"), "percentile labels on the x-axis");
        assert!(svg.matches("<polyline").count() >= 2, "two series");
    }
}
