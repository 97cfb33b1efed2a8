//! The charts: S1's calls per second against concurrent callers, and S7's
//! shares of calls per server.

use plotters::prelude::*;

/// Draws one line per series of `(callers, calls per second)` into `path`.
pub(crate) fn draw(
    path: &str,
    title: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    bound: Option<f64>,
) -> Result<(), String> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let max_x = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let max_y = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .chain(bound)
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..max_x * 1.2).log_scale(), 0.0..max_y)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("concurrent callers")
        .y_desc("calls per second")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    let colors = [BLUE, RED, GREEN];
    for ((label, points), color) in series.iter().zip(colors) {
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(*label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    if let Some(bound) = bound {
        let line = vec![(1.0, bound), (max_x * 1.2, bound)];
        chart
            .draw_series(LineSeries::new(line, BLACK.mix(0.4)))
            .map_err(|e| e.to_string())?
            .label("Little's law bound at 128 callers")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.4)));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Draws one group of bars per scenario, one bar per server's share of the
/// calls relative to an even share, with the even share as a line.
pub(crate) fn bars(path: &str, title: &str, groups: &[(&str, Vec<f64>)]) -> Result<(), String> {
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let slots: usize = groups.iter().map(|(_, bars)| bars.len() + 1).sum();
    let max_y = groups
        .iter()
        .flat_map(|(_, bars)| bars.iter().copied())
        .fold(1.5, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(20)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..slots as f64, 0.0..max_y)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("share of calls (1.0 = even)")
        .y_label_formatter(&|y| format!("{y:.1}"))
        .draw()
        .map_err(|e| e.to_string())?;
    let colors = [BLUE, RED, GREEN, MAGENTA];
    let mut x = 0.0;
    for ((label, shares), color) in groups.iter().zip(colors.into_iter().cycle()) {
        let start = x;
        let rectangles = shares.iter().enumerate().map(|(i, &share)| {
            let left = start + i as f64 + 0.1;
            Rectangle::new([(left, 0.0), (left + 0.8, share)], color.filled())
        });
        chart
            .draw_series(rectangles)
            .map_err(|e| e.to_string())?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
        x += shares.len() as f64 + 1.0;
    }
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 1.0), (slots as f64, 1.0)],
            BLACK.mix(0.5),
        ))
        .map_err(|e| e.to_string())?;
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
