//! SVG figure of a report: latency over time (p50 / p99 / max per bucket),
//! throughput and errors over time, and the latency percentile spectrum.

use plotters::prelude::*;

use crate::report::Report;

#[derive(Debug, thiserror::Error)]
#[error("plot: {0}")]
pub struct PlotError(String);

fn err<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError(e.to_string())
}

/// Lowest latency drawn on log axes (ms); zero cannot be drawn on a log scale.
const FLOOR_MS: f64 = 0.001;

/// Renders the report's figure as an SVG document.
pub fn render_svg(report: &Report) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 1050)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let title = format!("{} -> {}  ({}, {} conn)", report.meta.workload, report.meta.target, report.meta.mode, report.meta.connections);
        let (head, body) = root.split_vertically(40);
        head.draw(&Text::new(title, (10, 10), ("sans-serif", 18).into_font())).map_err(err)?;
        head.draw(&Text::new(
            report.first_line.clone(),
            (10, 28),
            ("sans-serif", 13).into_font().color(&if report.errors_total > 0 { RED } else { BLACK }),
        ))
        .map_err(err)?;
        let panels = body.split_evenly((3, 1));
        latency_over_time(report, &panels[0])?;
        throughput_over_time(report, &panels[1])?;
        percentile_spectrum(report, &panels[2])?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

fn ms(us: u64) -> f64 {
    (us as f64 / 1000.0).max(FLOOR_MS)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn latency_over_time(report: &Report, area: &Area) -> Result<(), PlotError> {
    let tl = &report.timeline;
    let series = |pick: fn(&crate::report::TimelinePoint) -> Option<u64>| -> Vec<(f64, f64)> {
        tl.iter().filter_map(|p| pick(p).map(|v| (p.t_s, ms(v)))).collect()
    };
    let p50 = series(|p| p.p50_us);
    let p99 = series(|p| p.p99_us);
    let max = series(|p| p.max_us);
    let x_max = tl.last().map(|p| p.t_s + 1.0).unwrap_or(1.0);
    let y_max = max.iter().map(|p| p.1).fold(1.0, f64::max) * 2.0;
    let y_min = p50.iter().map(|p| p.1).fold(f64::INFINITY, f64::min).min(y_max / 10.0).max(FLOOR_MS) / 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption("latency over time (from intended send time)", ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
        .map_err(err)?;
    chart.configure_mesh().x_desc("time since start of measurement (s)").y_desc("ms").draw().map_err(err)?;
    for (data, name, color) in [(p50, "p50", BLUE), (p99, "p99", MAGENTA), (max, "max", RED)] {
        chart
            .draw_series(LineSeries::new(data, color.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;
    Ok(())
}

fn throughput_over_time(report: &Report, area: &Area) -> Result<(), PlotError> {
    let tl = &report.timeline;
    let x_max = tl.last().map(|p| p.t_s + 1.0).unwrap_or(1.0);
    let y_max = tl.iter().map(|p| p.responses_per_s.max(p.errors_per_s).max(p.shed_per_s)).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption("responses, errors and shed per second", ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(err)?;
    chart.configure_mesh().x_desc("time since start of measurement (s)").y_desc("per s").draw().map_err(err)?;
    let resp: Vec<(f64, f64)> = tl.iter().map(|p| (p.t_s, p.responses_per_s)).collect();
    let errs: Vec<(f64, f64)> = tl.iter().map(|p| (p.t_s, p.errors_per_s)).collect();
    let shed: Vec<(f64, f64)> = tl.iter().map(|p| (p.t_s, p.shed_per_s)).collect();
    let orange = RGBColor(230, 140, 0);
    for (data, name, color) in [(resp, "responses/s", BLUE), (errs, "errors/s", RED), (shed, "shed (503 OVERLOADED)/s", orange)] {
        chart
            .draw_series(LineSeries::new(data, color.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;
    Ok(())
}

/// x = "nines" (0 → p0, 1 → p90, 2 → p99, 3 → p99.9 ...), y = latency.
fn percentile_spectrum(report: &Report, area: &Area) -> Result<(), PlotError> {
    let pts: Vec<(f64, f64)> =
        report.percentile_spectrum.iter().filter(|p| p.quantile < 1.0).map(|p| (-(1.0 - p.quantile).log10(), ms(p.latency_us))).collect();
    let x_max = pts.last().map(|p| p.0).unwrap_or(1.0).max(1.0);
    let y_max = report.latency_us.max.max(1) as f64 / 1000.0 * 2.0;
    let y_min = pts.first().map(|p| p.1).unwrap_or(FLOOR_MS).min(y_max / 10.0).max(FLOOR_MS) / 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption("latency by percentile", ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("ms")
        .x_labels(((x_max.ceil() as usize) + 1).min(8))
        .x_label_formatter(&|x| nines_label(*x))
        .draw()
        .map_err(err)?;
    chart.draw_series(LineSeries::new(pts, BLUE.stroke_width(2))).map_err(err)?;
    Ok(())
}

/// 0 → "p0", 1 → "p90", 2 → "p99", 3 → "p99.9".
pub fn nines_label(nines: f64) -> String {
    let q = 100.0 * (1.0 - 10f64.powf(-nines));
    let digits = (nines - 2.0).ceil().max(0.0) as usize;
    format!("p{q:.digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels() {
        assert_eq!(nines_label(0.0), "p0");
        assert_eq!(nines_label(1.0), "p90");
        assert_eq!(nines_label(2.0), "p99");
        assert_eq!(nines_label(3.0), "p99.9");
        assert_eq!(nines_label(4.0), "p99.99");
    }
}
