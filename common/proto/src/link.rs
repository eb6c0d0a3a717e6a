//! Impairment model of one direction of a link: what happens to a datagram between the moment
//! its sender hands it over and the moment the other end receives it.
//!
//! The simulator (`common/sim`) puts one [`Link`] on every directed pair of hosts, and the io
//! layer (`common/io`'s emulator) puts one on every emulated destination of a real process, so
//! an experiment means the same thing in both worlds. The model decides; its caller owns the
//! clock, the randomness ([`Rng`]) and the delay queue.
//!
//! For each datagram offered with [`Link::admit`], in this order:
//!
//! 1. a link that is down ([`LinkParams::up`] false) drops it ([`DropReason::Down`]);
//! 2. the Gilbert–Elliott chain, if any, takes one step and may drop it
//!    ([`DropReason::Burst`]);
//! 3. independent random loss may drop it ([`DropReason::Random`]);
//! 4. a rate limit serialises it behind the datagrams still being sent, or drops it when more
//!    than [`RATE_QUEUE_LIMIT`] of them wait ahead ([`DropReason::Queue`]);
//! 5. it is delivered `latency` plus a uniform jitter in `[0, jitter]` after it left (after its
//!    last bit left, under a rate limit), but never before a datagram sent earlier (FIFO),
//!    except when it is picked for reordering: it then overtakes the datagram sent before it if
//!    that one is still in flight.
//!
//! Lost datagrams never occupy the rate limiter: loss stands for drops anywhere on the path,
//! not on this hop's wire.

use crate::rng::Rng;
use std::fmt;
use std::time::{Duration, Instant};

/// The most a rate-limited link lets datagrams wait for their turn: one arriving behind a
/// longer backlog is dropped ([`DropReason::Queue`]). At rate `r` this is a buffer of
/// `r × 200 ms` (2.5 MB at 100 Mbit/s, 25 kB at 1 Mbit/s), like a router's tail-drop queue.
pub const RATE_QUEUE_LIMIT: Duration = Duration::from_millis(200);

/// Two-state burst-loss model (Gilbert–Elliott): a Markov chain between a good and a bad
/// state, stepped once per datagram, each state with its own loss probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// Probability of moving from good to bad at a datagram.
    pub p_good_to_bad: f64,
    /// Probability of moving from bad to good at a datagram; `1 / p_bad_to_good` is the mean
    /// number of datagrams a bad spell lasts.
    pub p_bad_to_good: f64,
    /// Loss probability in the good state (usually 0).
    pub loss_in_good: f64,
    /// Loss probability in the bad state (usually 1).
    pub loss_in_bad: f64,
}

impl GilbertElliott {
    /// The simple Gilbert model (nothing lost when good, everything when bad) whose long-run
    /// loss is `loss` and whose bursts of consecutive losses last `mean_burst` datagrams on
    /// average.
    ///
    /// `loss` is clamped to `[0, 1]` and `mean_burst` to at least 1. Short bursts cannot make
    /// a high loss: bad spells must be separated by good datagrams, so the loss reachable with
    /// bursts of mean length `b` is at most `b / (b + 1)`; beyond that the chain switches to
    /// bad after every good datagram and the average falls short of `loss`.
    pub fn from_loss_and_burst(loss: f64, mean_burst: f64) -> Self {
        let loss = clamp_probability(loss);
        let burst = if mean_burst.is_finite() {
            mean_burst.max(1.0)
        } else {
            1.0
        };
        let (p_good_to_bad, p_bad_to_good) = if loss >= 1.0 {
            (1.0, 0.0)
        } else {
            // Stationary P(bad) = p / (p + r) = loss, with r = 1 / burst.
            let r = 1.0 / burst;
            ((loss * r / (1.0 - loss)).min(1.0), r)
        };
        Self {
            p_good_to_bad,
            p_bad_to_good,
            loss_in_good: 0.0,
            loss_in_bad: 1.0,
        }
    }

    /// Long-run fraction of datagrams lost.
    pub fn average_loss(&self) -> f64 {
        let (p, r) = (self.p_good_to_bad, self.p_bad_to_good);
        if p + r <= 0.0 {
            // The chain never leaves the good state it starts in.
            return self.loss_in_good;
        }
        let bad = p / (p + r);
        (1.0 - bad) * self.loss_in_good + bad * self.loss_in_bad
    }

    /// Mean length of a bad spell, in datagrams (infinite when it never ends).
    pub fn mean_burst(&self) -> f64 {
        1.0 / self.p_bad_to_good
    }
}

/// The impairments of one direction of a link. The default is a perfect link: no delay, no
/// loss, no rate limit, up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkParams {
    /// One-way propagation delay.
    pub latency: Duration,
    /// Extra delay, uniform in `[0, jitter]`, drawn per datagram.
    pub jitter: Duration,
    /// Probability that a datagram is lost, independently of every other.
    pub loss: f64,
    /// Correlated (bursty) loss, applied on top of `loss`.
    pub burst: Option<GilbertElliott>,
    /// Probability that a datagram is not kept in order: it overtakes the datagram sent just
    /// before it when that one is still in flight. Without it the link is FIFO.
    pub reorder: f64,
    /// Bandwidth in bits per second: each datagram occupies the link for `len × 8 / rate`;
    /// `None` is unlimited, `Some(0)` lets nothing through.
    pub rate_bps: Option<u64>,
    /// A link that is down drops everything (partitions, cut cables).
    pub up: bool,
}

impl Default for LinkParams {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            burst: None,
            reorder: 0.0,
            rate_bps: None,
            up: true,
        }
    }
}

impl LinkParams {
    /// Parameters from the plain numbers of a topology file's link attributes (latency and
    /// jitter in milliseconds, loss as a probability, rate in Mbit/s); `None` leaves that
    /// impairment out. Negative or non-finite numbers count as absent.
    pub fn from_attrs(
        latency_ms: Option<f64>,
        jitter_ms: Option<f64>,
        loss: Option<f64>,
        rate_mbit: Option<f64>,
    ) -> Self {
        Self {
            latency: millis(latency_ms),
            jitter: millis(jitter_ms),
            loss: loss.map_or(0.0, clamp_probability),
            rate_bps: rate_mbit
                .filter(|r| r.is_finite() && *r > 0.0)
                .map(|r| ((r * 1e6).round() as u64).max(1)),
            ..Self::default()
        }
    }

    /// Whether the link leaves every datagram alone: delivered at once, in order, never lost.
    /// (`reorder` does not matter then: nothing is ever in flight to overtake.)
    pub fn is_perfect(&self) -> bool {
        self.up
            && self.latency.is_zero()
            && self.jitter.is_zero()
            && self.loss <= 0.0
            && self.burst.is_none_or(|ge| ge.average_loss() <= 0.0)
            && self.rate_bps.is_none()
    }
}

/// `latency 10 ms, jitter 0 ms, loss 5.0 %, rate —`, then burst, reorder and down when set.
impl fmt::Display for LinkParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "latency {} ms, jitter {} ms, loss {}, rate ",
            ms(self.latency),
            ms(self.jitter),
            percent(self.loss)
        )?;
        match self.rate_bps {
            None => f.write_str("—")?,
            Some(bps) => write!(f, "{} Mbit/s", trim(bps as f64 / 1e6, 3))?,
        }
        if let Some(ge) = &self.burst {
            write!(
                f,
                ", bursts of {} averaging {} loss",
                trim(ge.mean_burst(), 1),
                percent(ge.average_loss())
            )?;
        }
        if self.reorder > 0.0 {
            write!(f, ", reorder {}", percent(self.reorder))?;
        }
        if !self.up {
            f.write_str(", down")?;
        }
        Ok(())
    }
}

/// Why a datagram did not make it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// The link is down.
    Down,
    /// Independent random loss.
    Random,
    /// Gilbert–Elliott burst loss.
    Burst,
    /// The rate limiter's queue was full.
    Queue,
}

impl DropReason {
    /// Every reason, in a fixed order (for counters and reports).
    pub const ALL: [DropReason; 4] = [
        DropReason::Down,
        DropReason::Random,
        DropReason::Burst,
        DropReason::Queue,
    ];

    /// Lower-case name, as used in stats files.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Down => "down",
            DropReason::Random => "random",
            DropReason::Burst => "burst",
            DropReason::Queue => "queue",
        }
    }
}

/// What becomes of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Lost.
    Drop(DropReason),
    /// Arrives at this time (never before it was admitted).
    Deliver(Instant),
}

/// One direction of a link: its parameters and the state the impairments carry from one
/// datagram to the next.
///
/// # Calling contract
///
/// Call [`Link::admit`] once per datagram, in the order they are sent, with a `now` that never
/// goes back; deliver each datagram at the time the verdict names (the caller keeps the delay
/// queue). Datagrams with equal delivery times must be delivered in admission order.
#[derive(Debug, Clone)]
pub struct Link {
    params: LinkParams,
    /// Gilbert–Elliott state: in a bad spell.
    bad: bool,
    /// When the rate limiter finishes sending what it has accepted.
    busy_until: Option<Instant>,
    /// Delivery time of the latest in-order datagram: FIFO delivery never goes before it.
    last_delivery: Option<Instant>,
}

impl Link {
    /// A link in its initial state (good, idle, nothing in flight).
    pub fn new(params: LinkParams) -> Self {
        Self {
            params,
            bad: false,
            busy_until: None,
            last_delivery: None,
        }
    }

    /// Changes the impairments from now on. Datagrams already admitted keep their verdicts,
    /// and later ones are still delivered after them (unless reordered): lowering the latency
    /// does not let new datagrams overtake old ones.
    pub fn set_params(&mut self, params: LinkParams) {
        if params.burst.is_none() {
            self.bad = false;
        }
        if params.rate_bps.is_none() {
            self.busy_until = None;
        }
        self.params = params;
    }

    /// The current impairments.
    pub fn params(&self) -> &LinkParams {
        &self.params
    }

    /// Decides the fate of a datagram of `len` bytes sent at `now`.
    pub fn admit(&mut self, now: Instant, len: usize, rng: &mut Rng) -> Verdict {
        let p = self.params;
        if !p.up {
            return Verdict::Drop(DropReason::Down);
        }
        if let Some(ge) = &p.burst {
            let flip = if self.bad {
                ge.p_bad_to_good
            } else {
                ge.p_good_to_bad
            };
            if flip > 0.0 && rng.chance(flip) {
                self.bad = !self.bad;
            }
            let loss = if self.bad {
                ge.loss_in_bad
            } else {
                ge.loss_in_good
            };
            if loss > 0.0 && rng.chance(loss) {
                return Verdict::Drop(DropReason::Burst);
            }
        }
        if p.loss > 0.0 && rng.chance(p.loss) {
            return Verdict::Drop(DropReason::Random);
        }
        let sent = match p.rate_bps {
            None => now,
            Some(rate) => {
                let start = self.busy_until.map_or(now, |b| b.max(now));
                if rate == 0 || start - now > RATE_QUEUE_LIMIT {
                    return Verdict::Drop(DropReason::Queue);
                }
                let done = start + serialisation(len, rate);
                self.busy_until = Some(done);
                done
            }
        };
        let jitter = if p.jitter.is_zero() {
            Duration::ZERO
        } else {
            let max = u64::try_from(p.jitter.as_nanos()).unwrap_or(u64::MAX - 1);
            Duration::from_nanos(rng.below(max + 1))
        };
        let at = sent + p.latency + jitter;
        let reorder = p.reorder > 0.0 && rng.chance(p.reorder);
        match self.last_delivery {
            // The datagram sent before is still in flight: arrive just ahead of it. The FIFO
            // mark stays, so the next in-order datagram still comes after that one.
            Some(last) if reorder && last > now => {
                Verdict::Deliver(at.min(last - Duration::from_nanos(1)))
            }
            Some(last) => {
                let at = at.max(last);
                self.last_delivery = Some(at);
                Verdict::Deliver(at)
            }
            None => {
                self.last_delivery = Some(at);
                Verdict::Deliver(at)
            }
        }
    }
}

/// Time `len` bytes occupy a link of `rate` bit/s.
fn serialisation(len: usize, rate: u64) -> Duration {
    let nanos = (len as u128 * 8 * 1_000_000_000) / u128::from(rate.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

fn clamp_probability(p: f64) -> f64 {
    if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }
}

fn millis(ms: Option<f64>) -> Duration {
    ms.filter(|ms| ms.is_finite() && *ms > 0.0)
        .and_then(|ms| Duration::try_from_secs_f64(ms / 1e3).ok())
        .unwrap_or(Duration::ZERO)
}

/// Milliseconds with up to three decimals, trailing zeros trimmed: `10`, `2.5`, `0.2`.
fn ms(d: Duration) -> String {
    trim(d.as_secs_f64() * 1e3, 3)
}

/// A probability as a percentage: one decimal, more for small non-zero values.
fn percent(p: f64) -> String {
    let pct = p * 100.0;
    if pct > 0.0 && pct < 0.1 {
        format!("{pct:.3} %")
    } else {
        format!("{pct:.1} %")
    }
}

fn trim(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_epoch;

    const MS: Duration = Duration::from_millis(1);

    /// Offers `n` datagrams of `len` bytes from `t0`, one every `gap`, and returns their
    /// verdicts.
    fn offer(
        link: &mut Link,
        rng: &mut Rng,
        t0: Instant,
        n: usize,
        gap: Duration,
        len: usize,
    ) -> Vec<Verdict> {
        (0..n)
            .map(|i| link.admit(t0 + gap * i as u32, len, rng))
            .collect()
    }

    /// Send and delivery times of the delivered datagrams of [`offer`].
    fn deliveries(verdicts: &[Verdict], t0: Instant, gap: Duration) -> Vec<(Instant, Instant)> {
        verdicts
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                Verdict::Deliver(at) => Some((t0 + gap * i as u32, *at)),
                Verdict::Drop(_) => None,
            })
            .collect()
    }

    fn lost(verdicts: &[Verdict], reason: DropReason) -> usize {
        verdicts
            .iter()
            .filter(|v| **v == Verdict::Drop(reason))
            .count()
    }

    #[test]
    fn a_default_link_is_perfect_and_delivers_at_once() {
        let params = LinkParams::default();
        assert!(params.is_perfect());
        let mut link = Link::new(params);
        let mut rng = Rng::new(1);
        let now = test_epoch();
        assert_eq!(link.admit(now, 1316, &mut rng), Verdict::Deliver(now));
        assert!(!LinkParams::from_attrs(Some(1.0), None, None, None).is_perfect());
        assert!(!LinkParams::from_attrs(None, None, Some(0.01), None).is_perfect());
        assert!(!LinkParams::from_attrs(None, None, None, Some(10.0)).is_perfect());
    }

    #[test]
    fn latency_is_exact_without_jitter() {
        let mut link = Link::new(LinkParams {
            latency: 10 * MS,
            ..LinkParams::default()
        });
        let mut rng = Rng::new(2);
        let t0 = test_epoch();
        for i in 0..1000u32 {
            let now = t0 + Duration::from_micros(137) * i;
            assert_eq!(
                link.admit(now, 100, &mut rng),
                Verdict::Deliver(now + 10 * MS)
            );
        }
    }

    #[test]
    fn jitter_stays_within_its_bound_and_spreads_over_it() {
        let mut link = Link::new(LinkParams {
            latency: 10 * MS,
            jitter: 4 * MS,
            ..LinkParams::default()
        });
        let mut rng = Rng::new(3);
        // Sparse enough that FIFO never holds a datagram back.
        let gap = 20 * MS;
        let t0 = test_epoch();
        let v = offer(&mut link, &mut rng, t0, 10_000, gap, 100);
        let d: Vec<Duration> = deliveries(&v, t0, gap)
            .into_iter()
            .map(|(sent, at)| at - sent)
            .collect();
        assert_eq!(d.len(), 10_000);
        assert!(d.iter().all(|d| (10 * MS..=14 * MS).contains(d)));
        let (min, max) = (d.iter().min().unwrap(), d.iter().max().unwrap());
        assert!(*min < 10 * MS + Duration::from_micros(50), "{min:?}");
        assert!(*max > 14 * MS - Duration::from_micros(50), "{max:?}");
        let mean = d.iter().sum::<Duration>() / d.len() as u32;
        assert!(
            (11_900..12_100).contains(&mean.as_micros()),
            "mean delay {mean:?}"
        );
    }

    #[test]
    fn without_reorder_deliveries_never_go_backwards_even_with_large_jitter() {
        let mut link = Link::new(LinkParams {
            latency: 10 * MS,
            jitter: 5 * MS,
            ..LinkParams::default()
        });
        let mut rng = Rng::new(4);
        let t0 = test_epoch();
        let gap = Duration::from_micros(100);
        let v = offer(&mut link, &mut rng, t0, 20_000, gap, 100);
        let d = deliveries(&v, t0, gap);
        assert!(d.windows(2).all(|w| w[0].1 <= w[1].1));
        // The clamp only ever adds delay: nothing arrives before its latency.
        assert!(d.iter().all(|(sent, at)| *at >= *sent + 10 * MS));
    }

    #[test]
    fn reorder_makes_about_that_share_of_datagrams_overtake_an_earlier_one() {
        let mut link = Link::new(LinkParams {
            latency: 10 * MS,
            reorder: 0.1,
            ..LinkParams::default()
        });
        let mut rng = Rng::new(5);
        let n = 100_000;
        let t0 = test_epoch();
        let v = offer(&mut link, &mut rng, t0, n, MS, 100);
        let d = deliveries(&v, t0, MS);
        let mut latest: Option<Instant> = None;
        let mut overtakes = 0;
        for &(_, at) in &d {
            if latest.is_some_and(|l| at < l) {
                overtakes += 1;
            }
            latest = latest.max(Some(at));
        }
        let share = overtakes as f64 / n as f64;
        assert!((0.095..0.105).contains(&share), "{share}");
        // A reordered datagram arrives just before the one it overtakes, after it was sent;
        // the others keep the latency exactly.
        for (sent, at) in d {
            assert!(at > sent && at <= sent + 10 * MS);
        }
    }

    #[test]
    fn reorder_needs_something_in_flight_to_overtake() {
        let mut link = Link::new(LinkParams {
            latency: MS,
            reorder: 1.0,
            ..LinkParams::default()
        });
        let mut rng = Rng::new(6);
        let gap = 5 * MS;
        let t0 = test_epoch();
        let v = offer(&mut link, &mut rng, t0, 100, gap, 100);
        for (sent, at) in deliveries(&v, t0, gap) {
            assert_eq!(at, sent + MS);
        }
    }

    #[test]
    fn random_loss_matches_its_probability_over_100k_datagrams() {
        let mut link = Link::new(LinkParams {
            loss: 0.05,
            ..LinkParams::default()
        });
        let mut rng = Rng::new(7);
        let t0 = test_epoch();
        let v = offer(&mut link, &mut rng, t0, 100_000, MS, 100);
        let share = lost(&v, DropReason::Random) as f64 / 1e5;
        assert!((0.047..0.053).contains(&share), "{share}");
        assert_eq!(
            lost(&v, DropReason::Random),
            v.len() - deliveries(&v, t0, MS).len()
        );
    }

    #[test]
    fn gilbert_elliott_matches_its_average_loss_and_mean_burst_length() {
        let ge = GilbertElliott::from_loss_and_burst(0.05, 4.0);
        assert!((ge.average_loss() - 0.05).abs() < 1e-12);
        assert!((ge.mean_burst() - 4.0).abs() < 1e-12);
        let mut link = Link::new(LinkParams {
            burst: Some(ge),
            ..LinkParams::default()
        });
        let mut rng = Rng::new(8);
        let n = 100_000;
        let v = offer(&mut link, &mut rng, test_epoch(), n, MS, 100);
        let losses = lost(&v, DropReason::Burst);
        let share = losses as f64 / n as f64;
        assert!((0.04..0.06).contains(&share), "{share}");
        let bursts = v
            .windows(2)
            .filter(|w| {
                w[0] != Verdict::Drop(DropReason::Burst) && w[1] == Verdict::Drop(DropReason::Burst)
            })
            .count()
            + usize::from(v[0] == Verdict::Drop(DropReason::Burst));
        let mean = losses as f64 / bursts as f64;
        assert!((3.5..4.5).contains(&mean), "mean burst {mean}");
    }

    #[test]
    fn gilbert_elliott_is_clamped_to_what_short_bursts_can_reach() {
        let ge = GilbertElliott::from_loss_and_burst(0.9, 1.0);
        assert_eq!(ge.p_good_to_bad, 1.0);
        assert!((ge.average_loss() - 0.5).abs() < 1e-12);
        let all = GilbertElliott::from_loss_and_burst(1.0, 3.0);
        assert_eq!(all.average_loss(), 1.0);
        let none = GilbertElliott::from_loss_and_burst(0.0, 3.0);
        assert_eq!(none.average_loss(), 0.0);
        assert!(
            LinkParams {
                burst: Some(none),
                ..LinkParams::default()
            }
            .is_perfect()
        );
    }

    #[test]
    fn rate_limit_spaces_datagrams_by_their_serialisation_time() {
        // 8 Mbit/s: a byte per microsecond, so 1000 bytes take 1 ms.
        let mut link = Link::new(LinkParams {
            latency: 5 * MS,
            rate_bps: Some(8_000_000),
            ..LinkParams::default()
        });
        let mut rng = Rng::new(9);
        let t0 = test_epoch();
        for k in 1..=10u32 {
            assert_eq!(
                link.admit(t0, 1000, &mut rng),
                Verdict::Deliver(t0 + 5 * MS + k * MS)
            );
        }
        // 1316 bytes at 10 Mbit/s: 1.0528 ms each, measured from when the link is free.
        let mut link = Link::new(LinkParams {
            rate_bps: Some(10_000_000),
            ..LinkParams::default()
        });
        let each = Duration::from_nanos(1_052_800);
        let t1 = t0 + 100 * MS;
        assert_eq!(link.admit(t1, 1316, &mut rng), Verdict::Deliver(t1 + each));
        assert_eq!(
            link.admit(t1, 1316, &mut rng),
            Verdict::Deliver(t1 + each * 2)
        );
        let later = t1 + 50 * MS;
        assert_eq!(
            link.admit(later, 1316, &mut rng),
            Verdict::Deliver(later + each)
        );
    }

    #[test]
    fn rate_limit_drops_what_would_wait_longer_than_the_queue_limit() {
        let mut link = Link::new(LinkParams {
            rate_bps: Some(8_000_000),
            ..LinkParams::default()
        });
        let mut rng = Rng::new(10);
        let t0 = test_epoch();
        // Datagram k waits k ms: up to 200 ms is accepted, the rest is dropped.
        let v: Vec<Verdict> = (0..300).map(|_| link.admit(t0, 1000, &mut rng)).collect();
        assert_eq!(lost(&v, DropReason::Queue), 99);
        assert!(v[..201].iter().all(|v| matches!(v, Verdict::Deliver(_))));
        // Once the backlog drains, the link accepts again.
        assert!(matches!(
            link.admit(t0 + 150 * MS, 1000, &mut rng),
            Verdict::Deliver(_)
        ));
        let mut stuck = Link::new(LinkParams {
            rate_bps: Some(0),
            ..LinkParams::default()
        });
        assert_eq!(
            stuck.admit(t0, 1, &mut rng),
            Verdict::Drop(DropReason::Queue)
        );
    }

    #[test]
    fn a_link_that_is_down_drops_everything_and_recovers_when_up() {
        let params = LinkParams {
            latency: MS,
            up: false,
            ..LinkParams::default()
        };
        let mut link = Link::new(params);
        let mut rng = Rng::new(11);
        let t0 = test_epoch();
        let v = offer(&mut link, &mut rng, t0, 1000, MS, 100);
        assert_eq!(lost(&v, DropReason::Down), 1000);
        link.set_params(LinkParams { up: true, ..params });
        let t = t0 + 2 * Duration::from_secs(1);
        assert_eq!(link.admit(t, 100, &mut rng), Verdict::Deliver(t + MS));
    }

    #[test]
    fn lowering_the_latency_does_not_let_new_datagrams_overtake_old_ones() {
        let mut link = Link::new(LinkParams {
            latency: 50 * MS,
            ..LinkParams::default()
        });
        let mut rng = Rng::new(12);
        let t0 = test_epoch();
        assert_eq!(
            link.admit(t0, 100, &mut rng),
            Verdict::Deliver(t0 + 50 * MS)
        );
        link.set_params(LinkParams {
            latency: 10 * MS,
            ..LinkParams::default()
        });
        assert_eq!(link.params().latency, 10 * MS);
        assert_eq!(
            link.admit(t0 + MS, 100, &mut rng),
            Verdict::Deliver(t0 + 50 * MS)
        );
        assert_eq!(
            link.admit(t0 + 100 * MS, 100, &mut rng),
            Verdict::Deliver(t0 + 110 * MS)
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_verdicts() {
        let params = LinkParams {
            latency: 3 * MS,
            jitter: 2 * MS,
            loss: 0.1,
            burst: Some(GilbertElliott::from_loss_and_burst(0.05, 3.0)),
            reorder: 0.05,
            rate_bps: Some(20_000_000),
            up: true,
        };
        let t0 = test_epoch();
        let run = |seed| {
            let mut link = Link::new(params);
            let gap = Duration::from_micros(300);
            offer(&mut link, &mut Rng::new(seed), t0, 5000, gap, 1316)
        };
        // (Not assert_eq: a failure would print 10,000 verdicts.)
        assert!(run(13) == run(13));
        assert!(run(13) != run(14));
    }

    #[test]
    fn attributes_convert_from_topology_units() {
        let p = LinkParams::from_attrs(Some(10.0), Some(0.5), Some(0.05), Some(20.0));
        assert_eq!(p.latency, 10 * MS);
        assert_eq!(p.jitter, Duration::from_micros(500));
        assert_eq!(p.loss, 0.05);
        assert_eq!(p.rate_bps, Some(20_000_000));
        assert!(p.up && p.burst.is_none() && p.reorder == 0.0);
        assert_eq!(
            LinkParams::from_attrs(None, None, None, None),
            LinkParams::default()
        );
        let odd = LinkParams::from_attrs(Some(-1.0), Some(f64::NAN), Some(7.0), Some(0.0));
        assert_eq!(odd.latency, Duration::ZERO);
        assert_eq!(odd.jitter, Duration::ZERO);
        assert_eq!(odd.loss, 1.0);
        assert_eq!(odd.rate_bps, None);
    }

    #[test]
    fn parameters_display_in_the_units_of_the_log_line() {
        let p = LinkParams::from_attrs(Some(10.0), None, Some(0.05), None);
        assert_eq!(
            p.to_string(),
            "latency 10 ms, jitter 0 ms, loss 5.0 %, rate —"
        );
        let q = LinkParams {
            reorder: 0.01,
            up: false,
            ..LinkParams::from_attrs(Some(2.5), Some(0.25), Some(0.0001), Some(12.5))
        };
        assert_eq!(
            q.to_string(),
            "latency 2.5 ms, jitter 0.25 ms, loss 0.010 %, rate 12.5 Mbit/s, reorder 1.0 %, down"
        );
    }
}
