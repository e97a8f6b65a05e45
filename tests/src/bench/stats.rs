//! Summary statistics over the kept samples: nearest-rank percentiles, mean, min and max. No
//! interpolation and no outlier removal: every measured sample counts.

use serde::Serialize;

/// Percentiles and moments of one set of samples, in the samples' unit.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

/// The nearest-rank percentile of sorted samples: the smallest sample such that at least `q`
/// of all samples are at or below it (so p99 of 100 samples is the 99th, never an average).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `None` for no samples.
pub fn summarize(samples: impl IntoIterator<Item = f64>) -> Option<Summary> {
    let mut sorted: Vec<f64> = samples.into_iter().collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Some(Summary {
        n,
        p50: percentile(&sorted, 0.50),
        p90: percentile(&sorted, 0.90),
        p99: percentile(&sorted, 0.99),
        mean: sorted.iter().sum::<f64>() / n as f64,
        min: sorted[0],
        max: sorted[n - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.9), 90.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        let s = summarize([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.n, s.p50, s.min, s.max, s.mean), (3, 2.0, 1.0, 3.0, 2.0));
        assert!(summarize(std::iter::empty()).is_none());
    }
}
