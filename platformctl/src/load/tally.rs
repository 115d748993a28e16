//! What each worker collected, merged into one for the report.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::latency::new_histogram;
use super::verify::Created;

pub struct Tally {
    pub latency: Histogram<u64>,
    pub statuses: BTreeMap<String, u64>,
    pub created: Vec<Created>,
}

impl Tally {
    pub fn new() -> Self {
        Self {
            latency: new_histogram(),
            statuses: BTreeMap::new(),
            created: Vec::new(),
        }
    }

    pub fn merge(&mut self, other: Self) {
        let _ = self.latency.add(&other.latency);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.created.extend(other.created);
    }
}
