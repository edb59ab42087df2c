//! The real storage as a [`SeriesSource`], so PromQL and the query API read the
//! collector's durable store.

use std::collections::BTreeMap;

use super::source::check_samples;
use super::{QueryError, SeriesSource};
use crate::storage::metadata::MetricMetadata;
use crate::storage::{Matcher, SharedSeries, Storage};
use vigil_shared::model::{Labels, Series};

impl SeriesSource for Storage {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Series>, QueryError> {
        Storage::select(self, matchers, start_ms, end_ms).map_err(QueryError::from)
    }

    fn select_shared(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        max_samples: usize,
    ) -> Result<Vec<SharedSeries>, QueryError> {
        let series = Storage::select_shared(self, matchers, start_ms, end_ms)?;
        check_samples(series.iter().map(|s| s.1.len()).sum(), max_samples)?;
        Ok(series)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, QueryError> {
        Storage::label_names(self, matchers, start_ms, end_ms).map_err(QueryError::from)
    }

    fn metadata(
        &self,
        metric: Option<&str>,
        limit: i64,
        limit_per_metric: i64,
    ) -> BTreeMap<String, Vec<MetricMetadata>> {
        Storage::metadata(self).query(metric, limit, limit_per_metric)
    }

    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, QueryError> {
        Storage::series(self, matchers, start_ms, end_ms).map_err(QueryError::from)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, QueryError> {
        Storage::label_values(self, name, matchers, start_ms, end_ms).map_err(QueryError::from)
    }
}
