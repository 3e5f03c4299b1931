//! What a run measured: latency percentiles, the share of reads served without the
//! database, per time step and overall, and the SVG plot of both over time.

use std::ops::Range;
use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::workload::Sample;

/// The time step of the plot.
pub(crate) const STEP_MS: u32 = 250;

/// One time step.
pub(crate) struct Step {
    pub(crate) latency: Histogram<u64>,
    pub(crate) reads: u64,
    pub(crate) writes: u64,
    pub(crate) errors: u64,
    /// Queries the database ran during the step, when known (a share of those counted
    /// between two samples, in proportion to the time the step shares with them).
    pub(crate) queries: Option<f64>,
}

impl Step {
    fn new() -> Self {
        Self {
            latency: histogram(),
            reads: 0,
            writes: 0,
            errors: 0,
            queries: None,
        }
    }

    /// The share of reads answered without a query: 1 − (queries − writes) / reads.
    pub(crate) fn served_from_cache(&self) -> Option<f64> {
        let queries = self.queries?;
        (self.reads > 0).then(|| {
            let read_queries = (queries - self.writes as f64).max(0.0);
            (1.0 - read_queries / self.reads as f64).clamp(0.0, 1.0)
        })
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// A whole run.
pub(crate) struct Report {
    pub(crate) steps: Vec<Step>,
    pub(crate) all: Step,
    pub(crate) seconds: f64,
}

impl Report {
    /// Sorts `samples` into steps; `queries` is the database's query count sampled at
    /// the start of each step (index = step).
    pub(crate) fn new(samples: &[Sample], queries: &[(u32, u64)], seconds: f64) -> Self {
        let steps_count = (seconds * 1000.0 / f64::from(STEP_MS)).ceil() as usize;
        let mut steps: Vec<Step> = (0..steps_count.max(1)).map(|_| Step::new()).collect();
        let mut all = Step::new();
        for sample in samples {
            let index = (sample.at_ms / STEP_MS) as usize;
            let Some(step) = steps.get_mut(index) else {
                continue;
            };
            for step in [step, &mut all] {
                let _ = step.latency.record(u64::from(sample.micros.max(1)));
                if sample.write {
                    step.writes += 1;
                } else {
                    step.reads += 1;
                }
                if !sample.ok {
                    step.errors += 1;
                }
            }
        }
        // Samples are taken about once a step, but late when the service is slow to
        // answer: each interval's queries are shared by the steps it covers.
        let step_ms = f64::from(STEP_MS);
        for pair in queries.windows(2) {
            let ((from, before), (to, after)) = (pair[0], pair[1]);
            let (from, to) = (f64::from(from), f64::from(to));
            if to <= from {
                continue;
            }
            let counted = after.saturating_sub(before) as f64;
            let first = (from / step_ms) as usize;
            for (index, step) in steps.iter_mut().enumerate().skip(first) {
                let (start, end) = (index as f64 * step_ms, (index + 1) as f64 * step_ms);
                if start >= to {
                    break;
                }
                let shared = end.min(to) - start.max(from);
                if shared > 0.0 {
                    *step.queries.get_or_insert(0.0) += counted * shared / (to - from);
                }
            }
        }
        if let (Some(first), Some(last)) = (queries.first(), queries.last()) {
            all.queries = Some(last.1.saturating_sub(first.1) as f64);
        }
        Self {
            steps,
            all,
            seconds,
        }
    }

    /// The summary printed after a run.
    pub(crate) fn summary(&self) -> String {
        let all = &self.all;
        let requests = all.reads + all.writes;
        let ms = |quantile: f64| all.latency.value_at_quantile(quantile) as f64 / 1000.0;
        let mut text = format!(
            "requests  {requests} ({:.0}/s): {} reads, {} writes, {} errors\n\
             latency   p50 {:.3} ms, p99 {:.3} ms, p999 {:.3} ms, max {:.3} ms\n",
            requests as f64 / self.seconds,
            all.reads,
            all.writes,
            all.errors,
            ms(0.5),
            ms(0.99),
            ms(0.999),
            all.latency.max() as f64 / 1000.0,
        );
        if let (Some(queries), Some(ratio)) = (all.queries, all.served_from_cache()) {
            text += &format!(
                "database  {queries:.0} queries; reads served without it {:.2}% \
                 ({:.0} queries saved)\n",
                ratio * 100.0,
                (requests as f64 - queries).max(0.0)
            );
        }
        text
    }

    /// Writes the plot: p50 and p99 latency (log scale) above, the share of reads
    /// served without the database below, `outage` shaded on both.
    pub(crate) fn plot(
        &self,
        path: &Path,
        title: &str,
        outage: Option<Range<f64>>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 20))?;
        let (upper, lower) = root.split_vertically(360);
        let at = |index: usize| (index as f64 + 0.5) * f64::from(STEP_MS) / 1000.0;
        let quantile = |quantile: f64| {
            self.steps
                .iter()
                .enumerate()
                .filter(|(_, step)| !step.latency.is_empty())
                .map(move |(index, step)| {
                    (
                        at(index),
                        (step.latency.value_at_quantile(quantile) as f64 / 1000.0).max(0.001),
                    )
                })
        };
        let highest = quantile(0.99).map(|(_, ms)| ms).fold(1.0, f64::max);

        let mut latency = ChartBuilder::on(&upper)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..self.seconds, (0.01..highest * 2.0).log_scale())?;
        latency
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("latency (ms)")
            .draw()?;
        if let Some(outage) = &outage {
            latency.draw_series(std::iter::once(Rectangle::new(
                [(outage.start, 0.01), (outage.end, highest * 2.0)],
                RED.mix(0.12).filled(),
            )))?;
        }
        latency
            .draw_series(LineSeries::new(quantile(0.5), &BLUE))?
            .label("p50")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE));
        latency
            .draw_series(LineSeries::new(quantile(0.99), &RED))?
            .label("p99")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED));
        latency
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;

        let mut ratio = ChartBuilder::on(&lower)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..self.seconds, 0.0..1.0)?;
        ratio
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("reads without a query")
            .draw()?;
        if let Some(outage) = &outage {
            ratio.draw_series(std::iter::once(Rectangle::new(
                [(outage.start, 0.0), (outage.end, 1.0)],
                RED.mix(0.12).filled(),
            )))?;
        }
        ratio.draw_series(LineSeries::new(
            self.steps
                .iter()
                .enumerate()
                .filter_map(|(index, step)| Some((at(index), step.served_from_cache()?))),
            &GREEN.mix(0.9),
        ))?;
        root.present()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Report, STEP_MS};
    use crate::workload::Sample;

    fn sample(at_ms: u32, micros: u32, write: bool) -> Sample {
        Sample {
            at_ms,
            micros,
            write,
            ok: true,
        }
    }

    #[test]
    fn steps_count_reads_writes_and_the_reads_served_without_a_query() {
        // Step 0: 8 reads and 2 writes, 4 queries (2 for the writes): 6 of 8 reads
        // served from the cache. Step 1: 4 reads, no query.
        let mut samples: Vec<Sample> = (0..8).map(|n| sample(n * 10, 1_000, false)).collect();
        samples.extend([sample(100, 2_000, true), sample(110, 2_000, true)]);
        samples.extend((0..4).map(|n| sample(STEP_MS + n, 500, false)));
        // Sampled late once: the 4 queries of 0..300 ms are shared 250:50.
        let queries = [(0, 10), (STEP_MS + 50, 14), (2 * STEP_MS, 14)];
        let report = Report::new(&samples, &queries, 0.5);
        assert_eq!(report.steps.len(), 2);
        assert_eq!((report.steps[0].reads, report.steps[0].writes), (8, 2));
        let share = |step: usize| report.steps[step].queries.unwrap();
        assert!(
            (share(0) - 4.0 * 250.0 / 300.0).abs() < 1e-9,
            "{}",
            share(0)
        );
        assert!((share(1) - 4.0 * 50.0 / 300.0).abs() < 1e-9, "{}", share(1));
        // Step 0: 8 reads, 2 writes, 3.33 queries: 1.33 for reads.
        let served = report.steps[0].served_from_cache().unwrap();
        assert!(
            (served - (1.0 - (10.0 / 3.0 - 2.0) / 8.0)).abs() < 1e-9,
            "{served}"
        );
        assert_eq!(report.all.served_from_cache(), Some(10.0 / 12.0));
        let summary = report.summary();
        assert!(summary.contains("requests  14 "), "{summary}");
        assert!(summary.contains("4 queries"), "{summary}");

        let path = std::env::temp_dir().join(format!("loadgen-test-{}.svg", std::process::id()));
        report.plot(&path, "test", Some(0.1..0.3)).expect("plotted");
        let svg = std::fs::read_to_string(&path).expect("written");
        let _ = std::fs::remove_file(&path);
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline"),
            "{svg:.200}"
        );
    }
}
