//! gRPC A78's xDS client instruments, as xds-client records them: the
//! connection state goes on the status board, and with feature `metrics`
//! every instrument goes to the `metrics` facade under A78's names and
//! labels (`grpc.xds_client.connected`, `…server_failure`,
//! `…resource_updates_valid`, `…resource_updates_invalid`, `…resources`).

use std::sync::Arc;

use xds_client::metrics::instruments::{XDS_CLIENT_CONNECTED, XDS_CLIENT_SERVER_FAILURE};
use xds_client::{Instrument, KeyValue, MetricsRecorder};

use crate::telemetry::xds_status::Board;

/// Takes the xDS client's measurements.
pub(crate) struct Recorder {
    board: Arc<Board>,
}

impl Recorder {
    pub(crate) fn new(board: Arc<Board>) -> Self {
        #[cfg(feature = "metrics")]
        describe();
        Self { board }
    }
}

/// Gives each of A78's instruments its help text, as xds-client words it.
#[cfg(feature = "metrics")]
fn describe() {
    use xds_client::InstrumentKind;
    for instrument in xds_client::metrics::instruments::ALL {
        let (name, help) = (instrument.name, instrument.description);
        match instrument.kind {
            InstrumentKind::Counter => metrics::describe_counter!(name, help),
            InstrumentKind::Histogram => metrics::describe_histogram!(name, help),
            InstrumentKind::Gauge | InstrumentKind::UpDownCounter => {
                metrics::describe_gauge!(name, help);
            }
        }
    }
}

impl MetricsRecorder for Recorder {
    fn add_counter_u64(&self, instrument: &'static Instrument, value: u64, attrs: &[KeyValue]) {
        if std::ptr::eq(instrument, &XDS_CLIENT_SERVER_FAILURE) {
            tracing::warn!(
                "the xDS control plane became unreachable; the pool serves from what it has"
            );
            self.board.server_failed();
        }
        #[cfg(feature = "metrics")]
        metrics::counter!(instrument.name, &labels(attrs)).increment(value);
        #[cfg(not(feature = "metrics"))]
        let _ = (value, attrs);
    }

    fn add_up_down_counter_i64(
        &self,
        instrument: &'static Instrument,
        value: i64,
        attrs: &[KeyValue],
    ) {
        #[cfg(feature = "metrics")]
        metrics::gauge!(instrument.name, &labels(attrs)).increment(value as f64);
        #[cfg(not(feature = "metrics"))]
        let _ = (instrument, value, attrs);
    }

    fn record_histogram_f64(
        &self,
        instrument: &'static Instrument,
        value: f64,
        attrs: &[KeyValue],
    ) {
        #[cfg(feature = "metrics")]
        metrics::histogram!(instrument.name, &labels(attrs)).record(value);
        #[cfg(not(feature = "metrics"))]
        let _ = (instrument, value, attrs);
    }

    fn record_gauge_i64(&self, instrument: &'static Instrument, value: i64, attrs: &[KeyValue]) {
        if std::ptr::eq(instrument, &XDS_CLIENT_CONNECTED) {
            self.board.connected(value != 0);
        }
        #[cfg(feature = "metrics")]
        metrics::gauge!(instrument.name, &labels(attrs)).set(value as f64);
        #[cfg(not(feature = "metrics"))]
        let _ = attrs;
    }
}

/// A78's attributes as the facade's labels.
#[cfg(feature = "metrics")]
fn labels(attrs: &[KeyValue]) -> Vec<(&'static str, String)> {
    use xds_client::Value;
    attrs
        .iter()
        .map(|kv| {
            let value = match &kv.value {
                Value::Bool(b) => b.to_string(),
                Value::Int(i) => i.to_string(),
                Value::F64(f) => f.to_string(),
                Value::Str(s) => s.as_str().to_owned(),
            };
            (kv.key, value)
        })
        .collect()
}
