//! Round-trip time estimation (RFC 6298 smoothing) and the retransmission timeout derived
//! from it.

use std::time::Duration;

/// Smoothed RTT, its variation and the RTO of one peer.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    latest: Option<Duration>,
    min: Option<Duration>,
    samples: u64,
}

/// RTO before the first sample: generous, as RFC 6298 asks, but short enough for a LAN.
pub const INITIAL_RTO: Duration = Duration::from_millis(200);
/// The RTO never drops below this: loopback RTTs of tens of microseconds would otherwise make
/// every scheduling hiccup a retransmission.
pub const MIN_RTO: Duration = Duration::from_millis(20);
/// The RTO never grows beyond this, whatever the backoff.
pub const MAX_RTO: Duration = Duration::from_secs(2);

impl Default for RttEstimator {
    fn default() -> Self {
        Self::new()
    }
}

impl RttEstimator {
    /// An estimator with no sample yet.
    pub fn new() -> Self {
        Self {
            srtt: None,
            rttvar: Duration::ZERO,
            latest: None,
            min: None,
            samples: 0,
        }
    }

    /// Feeds one sample (only from unambiguous exchanges: Karn's rule is the caller's).
    pub fn on_sample(&mut self, rtt: Duration) {
        self.latest = Some(rtt);
        self.samples += 1;
        self.min = Some(self.min.map_or(rtt, |m| m.min(rtt)));
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// Smoothed RTT, if any sample arrived.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The most recent sample.
    pub fn latest(&self) -> Option<Duration> {
        self.latest
    }

    /// The smallest sample seen.
    pub fn min(&self) -> Option<Duration> {
        self.min
    }

    /// How many samples were fed.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Retransmission timeout: `srtt + 4·rttvar`, clamped to `[MIN_RTO, MAX_RTO]`.
    pub fn rto(&self) -> Duration {
        match self.srtt {
            None => INITIAL_RTO,
            Some(srtt) => (srtt + self.rttvar * 4).clamp(MIN_RTO, MAX_RTO),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_sets_srtt_and_half_variance() {
        let mut e = RttEstimator::new();
        assert_eq!(e.rto(), INITIAL_RTO);
        e.on_sample(Duration::from_millis(100));
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(e.rto(), Duration::from_millis(300));
    }

    #[test]
    fn smoothing_follows_rfc6298() {
        let mut e = RttEstimator::new();
        e.on_sample(Duration::from_millis(100));
        e.on_sample(Duration::from_millis(200));
        // srtt = 7/8·100 + 1/8·200 = 112.5; rttvar = 3/4·50 + 1/4·100 = 62.5
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(112_500 + 250_000));
        assert_eq!(e.min(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn rto_is_clamped() {
        let mut e = RttEstimator::new();
        e.on_sample(Duration::from_micros(50));
        assert_eq!(e.rto(), MIN_RTO);
        let mut e = RttEstimator::new();
        e.on_sample(Duration::from_secs(5));
        assert_eq!(e.rto(), MAX_RTO);
    }
}
